"""Which image corner is a1, when the caller does not say.

Four corners fix the homography only up to a quarter turn.  Three cues break the tie, each
cheap and each from chess itself:

* **The checker pattern** (image cue): a1 is a dark square, so a1 lies at one of the two image
  corners whose corner squares are dark.  :func:`checker_log_odds` reads which diagonal that is
  from the brightness of neighbouring squares (weighted towards squares the classifier sees as
  empty, since a piece hides its square's colour).  This leaves two candidates, half a turn apart.
* **Home sides** (position cue): White's material stands mostly on ranks 1-4 and Black's on
  5-8 for most of a game; :func:`home_side_score` measures that from the classifier's colour
  probabilities and separates the two remaining candidates.
* **Plausibility**: the caller's ``score_fn`` (the recogniser passes the log-probability of the
  decoded most probable legal position: pawns off the back ranks, one king a side).

A position placed at random (a study, a composed puzzle) has no home sides; there only the
checker pattern and plausibility speak, and a half-turn error stays possible.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from chessrec.errors import UserError
from chessrec.geometry import A1_POSITIONS, board_homography, order_corners

#: weight of :func:`home_side_score` against the decoded log-probability (nats per unit of score);
#: chosen on the default profile's *validation* split (see docs/features.md), not on the test split
HOME_SIDE_WEIGHT = 3.0
#: the a1 positions under which the dark squares are the cells of odd (row + column) in the image-aligned
#: 8 x 8 grid (row 0 at the image's top edge, column 0 at its left edge)
_ODD_DARK = ("bottom-left", "top-right")
_WHITE_CLASSES = np.arange(0, 6)
_BLACK_CLASSES = np.arange(6, 12)
#: rank weight of each square a1..h8: +1 on rank 1 down to -1 on rank 8
_RANK_WEIGHT = (3.5 - np.arange(64) // 8) / 3.5


@dataclass(frozen=True)
class OrientationResult:
    a1: str
    corners: np.ndarray  # (4, 2) in CORNER_NAMES order for the chosen a1
    scores: dict[str, float]  # per a1 position: score_fn + log prior (higher is more plausible)

    @property
    def margin(self) -> float:
        """Score gap between the winner and the runner-up: how sure the decision is."""
        ranked = sorted(self.scores.values(), reverse=True)
        return ranked[0] - ranked[1]


def cell_brightness(image: np.ndarray, image_corners, cell_px: int = 16) -> np.ndarray:
    """(8, 8) median grey level of the middle of each square, rows from the image's top edge.

    ``image_corners`` are the board's corners in image order (top-left, top-right,
    bottom-right, bottom-left), as ``order_corners(points, "bottom-left")`` returns them.
    """
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    side = 8 * cell_px
    board = cv2.warpPerspective(grey, board_homography(image_corners, side), (side, side), flags=cv2.INTER_AREA)
    margin = cell_px // 4
    cells = board.reshape(8, cell_px, 8, cell_px)[:, margin:cell_px - margin, :, margin:cell_px - margin]
    return np.median(cells.transpose(0, 2, 1, 3).reshape(8, 8, -1), axis=2).astype(np.float64)


def checker_log_odds(brightness: np.ndarray, empty: np.ndarray | None = None, contrast: float = 0.05) -> float:
    """Log-odds that the dark squares are the odd (row + column) cells of ``brightness``.

    Each pair of neighbouring cells votes by which of the two is darker (a soft vote,
    ``tanh`` of the relative difference over ``contrast``), weighted by how likely both
    cells are empty (``empty``: (8, 8) probabilities, default all 1).  Pieces on squares and
    shadows add noise but no consistent direction, so the sum grows with the evidence.
    """
    weight = np.ones((8, 8)) if empty is None else np.clip(np.asarray(empty, dtype=np.float64), 0.0, 1.0)
    odd = (np.add.outer(np.arange(8), np.arange(8)) % 2).astype(bool)
    total = 0.0
    for a, b, wa, wb, odd_a in ((brightness[:, :-1], brightness[:, 1:], weight[:, :-1], weight[:, 1:], odd[:, :-1]),
                                (brightness[:-1], brightness[1:], weight[:-1], weight[1:], odd[:-1])):
        diff = (b - a) / (a + b + 1.0)  # > 0: b is brighter
        vote = np.tanh(diff / contrast) * np.where(odd_a, 1.0, -1.0)  # > 0: the odd cell is the darker one
        total += float(np.sum(wa * wb * vote))
    return total


def checker_log_prior(image: np.ndarray, image_corners, empty_by_square: np.ndarray | None = None) -> dict[str, float]:
    """Log prior of each a1 position from the checker pattern (a1 is dark), for :func:`decide_orientation`.

    ``empty_by_square``: the classifier's probability that each square a1..h8 is empty, read
    from the crops taken with a1 at the image's bottom-left, so that square and cell match.
    """
    corners = order_corners(image_corners, "bottom-left")  # image TL, TR, BR, BL
    empty = None
    if empty_by_square is not None:  # square (file f, rank r) -> cell (row 7 - r, column f)
        empty = np.asarray(empty_by_square, dtype=np.float64).reshape(8, 8)[::-1]
    odds = checker_log_odds(cell_brightness(image, corners), empty)
    return {a1: (odds if a1 in _ODD_DARK else -odds) / 2.0 for a1 in A1_POSITIONS}


def home_side_score(probs: np.ndarray) -> float:
    """How much White's material stands on ranks 1-4 and Black's on 5-8, in pieces.

    ``probs``: (64, 13) class probabilities, squares a1..h8.  +1 per white piece on rank 1 or
    black piece on rank 8, scaled linearly to -1 on the far back rank; half a turn flips the sign.
    """
    probs = np.asarray(probs, dtype=np.float64)
    side = probs[:, _WHITE_CLASSES].sum(axis=1) - probs[:, _BLACK_CLASSES].sum(axis=1)
    return float(np.sum(side * _RANK_WEIGHT))


def decide_orientation(
    image_corners,
    score_fn: Callable[[np.ndarray], float],
    log_prior: Mapping[str, float] | None = None,
) -> OrientationResult:
    """Pick the a1 position whose rotation of ``image_corners`` ``score_fn`` finds most plausible.

    ``log_prior`` maps a1 positions to log-probabilities added to the scores (missing positions
    get 0): the image's cues come in through it (:func:`checker_log_prior`).
    """
    prior = dict(log_prior or {})
    unknown = set(prior) - set(A1_POSITIONS)
    if unknown:
        raise UserError(f"orientation prior names unknown a1 positions {sorted(unknown)}; use {A1_POSITIONS}")
    scores: dict[str, float] = {}
    candidates: dict[str, np.ndarray] = {}
    for a1 in A1_POSITIONS:
        corners = order_corners(image_corners, a1=a1)
        score = float(score_fn(corners)) + float(prior.get(a1, 0.0))
        if not np.isfinite(score):
            score = -np.inf
        scores[a1], candidates[a1] = score, corners
    if all(s == -np.inf for s in scores.values()):
        raise UserError("cannot decide the board's orientation: no rotation gives a plausible position")
    best = max(A1_POSITIONS, key=lambda a1: scores[a1])  # ties: the first listed (White nearest)
    return OrientationResult(a1=best, corners=candidates[best], scores=scores)
