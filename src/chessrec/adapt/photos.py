"""The photos of a user's set: labels from a folder or implied by the starting position, corners
given or located, and a check that the labels match what the base model sees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import chess
import numpy as np

from chessrec.errors import UserError
from chessrec.geometry import A1_POSITIONS, order_corners, validate_corners
from chessrec.labels import EMPTY, fen_from_labels, labels_from_board

#: the starting position's 64 labels (a1 = 0), read-only: every start-position photo shares it
START_LABELS = labels_from_board(chess.BaseBoard())
START_LABELS.setflags(write=False)
#: a label "contradicts" what the base model sees where the model gives the label's group (empty,
#: a white piece, a black piece) less than this probability ...
CONTRADICTION_P = 0.02
#: ... and the labels of a photo are refused when more squares than this contradict it.  Measured
#: on the 30 real-dev photos and the released model (which never saw that set): their right labels
#: contradict 0-5 squares; the FEN of a photo 7 moves away 13-35; the right FEN with a1 in the
#: opposite corner 5-40 (median 30).  A FEN one move off (4-32) may pass: a slip of a square or
#: two is not detectable this way.
MAX_CONTRADICTIONS = 8


@dataclass(frozen=True)
class SetPhoto:
    """One labelled photo of the user's set.

    ``corners``: the board's outer corners in the full-size photo, in :data:`chessrec.labels.CORNER_NAMES`
    order (a8, h8, h1, a1), or None to locate them (then ``a1`` names the image corner nearest a1).
    """

    path: Path
    labels: np.ndarray
    corners: np.ndarray | None = None
    a1: str | None = None

    @property
    def fen(self) -> str:
        return fen_from_labels(self.labels)


def photos_from_folder(folder: Path) -> list[SetPhoto]:
    """Labelled photos of a folder: ChessReD (``annotations.json``) or chesscog-style JSON labels."""
    from chessrec.datasets import load_chesscog, load_chessred

    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"{folder}: no such folder of labelled photos")
    load = load_chessred(folder) if (folder / "annotations.json").is_file() else load_chesscog(folder)
    return [SetPhoto(s.image_path, s.labels, s.corners) for s in sorted(load.samples, key=lambda s: str(s.image_path))]


def start_position_photos(paths: list[Path], a1: str) -> list[SetPhoto]:
    """Photos of the starting position: the labels are implied, ``a1`` says which image corner is
    nearest a1 (the same for every photo); the corners are located."""
    if a1 not in A1_POSITIONS:
        raise UserError(f"--a1 must be one of {', '.join(A1_POSITIONS)}, got {a1!r}")
    return [SetPhoto(Path(p), START_LABELS, None, a1) for p in paths]


@dataclass(frozen=True)
class PreparedPhoto:
    """A photo read as inference reads it (large JPEGs decoded reduced) with its board corners in
    those pixels (a8, h8, h1, a1 order) and its labels."""

    photo: SetPhoto
    pixels: np.ndarray
    corners: np.ndarray
    factor: int


def prepare_photo(photo: SetPhoto) -> PreparedPhoto:
    """Read the photo as ``chessrec predict`` does and place its board: the given corners, or the
    located ones turned so that a1 is where ``photo.a1`` says."""
    from chessrec.recognize import read_image

    pixels, factor = read_image(photo.path)
    if photo.corners is not None:
        corners = np.asarray(photo.corners, dtype=np.float64) / factor
        try:
            validate_corners(corners, pixels.shape)
        except UserError as exc:
            raise UserError(f"{photo.path}: {exc}") from None
        return PreparedPhoto(photo, pixels, corners, factor)
    from chessrec.recognize import Recognizer

    image_corners = Recognizer(lock=False).locate(pixels, name=str(photo.path))  # names the file when no board
    return PreparedPhoto(photo, pixels, order_corners(image_corners, photo.a1 or "bottom-left"), factor)


def group_of(labels: np.ndarray) -> np.ndarray:
    """0 empty, 1 a white piece, 2 a black piece, per square (class ids: white 0-5, black 6-11)."""
    labels = np.asarray(labels)
    return np.where(labels == EMPTY, 0, np.where(labels < 6, 1, 2))


def group_probabilities(probs: np.ndarray) -> np.ndarray:
    """(64, 13) class probabilities -> (64, 3) probabilities of empty / white piece / black piece."""
    return np.stack([probs[:, EMPTY], probs[:, :6].sum(axis=1), probs[:, 6:EMPTY].sum(axis=1)], axis=1)


def contradicted_squares(labels: np.ndarray, probs: np.ndarray, threshold: float = CONTRADICTION_P) -> np.ndarray:
    """Indices of the squares whose label the base model finds implausible: it gives the label's
    group (empty, white, black) less than ``threshold``.  Piece types are not checked: telling
    them apart on a new set is what adaptation is for; seeing a piece and its colour is not."""
    p = group_probabilities(probs)[np.arange(64), group_of(labels)]
    return np.flatnonzero(p < threshold)


def check_labels_match(photo: SetPhoto, probs: np.ndarray, limit: int = MAX_CONTRADICTIONS) -> None:
    """Refuse labels that do not match what is visible (a wrong FEN, a wrong a1, another photo's labels)."""
    bad = contradicted_squares(photo.labels, probs)
    if len(bad) > limit:
        names = " ".join(chess.square_name(int(s)) for s in bad[:8])
        raise UserError(f"{photo.path}: its labels ({photo.fen}) do not match the photo: the model sees another "
                        f"occupancy or colour on {len(bad)} squares ({names}{' ...' if len(bad) > 8 else ''}); "
                        "check the FEN and which corner is a1 (--no-label-check skips this check)")
