"""Which image corner is a1, when the caller does not say.

A board's four corners fix the homography only up to a quarter turn; the checker pattern
cannot break the tie (a1 and h8 are both dark).  The position can: read under the right
rotation, pawns stand off the back ranks, each side has one king and the pieces look like
pieces.  So each of the four rotations is scored by the caller's ``score_fn`` (the recogniser
passes crop -> classifier -> log-probability of the decoded most probable position) and the
most plausible one wins, optionally nudged by a prior over where photographers stand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from chessrec.errors import UserError
from chessrec.geometry import A1_POSITIONS, order_corners


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


def decide_orientation(
    image: np.ndarray | None,
    image_corners,
    score_fn: Callable[[np.ndarray], float],
    log_prior: Mapping[str, float] | None = None,
) -> OrientationResult:
    """Pick the a1 position whose rotation of ``image_corners`` ``score_fn`` finds most plausible.

    ``image`` is accepted for image cues and may be None; ``log_prior`` maps a1 positions to
    log-probabilities added to the scores (missing positions get 0).
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
