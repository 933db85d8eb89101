"""The one in-memory label format: 64 class ids per board, ChessReD category order.

Every data source (renderer, ChessReD, chesscog-style JSON, a user's photos) is normalised
into :class:`BoardSample`; everything downstream (features, training, decoding, evaluation)
reads only this.  Squares are indexed as in python-chess (a1 = 0, b1 = 1, ..., h8 = 63).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import chess
import numpy as np

#: ChessReD ``category_id`` order; index 12 is the empty square.
CLASS_NAMES: tuple[str, ...] = (
    "white-pawn", "white-rook", "white-knight", "white-bishop", "white-queen", "white-king",
    "black-pawn", "black-rook", "black-knight", "black-bishop", "black-queen", "black-king",
    "empty",
)
NUM_CLASSES = len(CLASS_NAMES)
EMPTY = 12
#: FEN letter of each class id (``"."`` for empty).
CLASS_SYMBOLS: tuple[str, ...] = ("P", "R", "N", "B", "Q", "K", "p", "r", "n", "b", "q", "k", ".")
_SYMBOL_TO_CLASS = {s: i for i, s in enumerate(CLASS_SYMBOLS)}

#: Board corners, named as seen from White in a standard diagram (a8 top-left, h1 bottom-right).
CORNER_NAMES: tuple[str, ...] = ("top_left", "top_right", "bottom_right", "bottom_left")


class LabelError(ValueError):
    """A label (FEN, square name, category id) that cannot describe a chess board."""


def class_of_piece(piece: chess.Piece | None) -> int:
    return EMPTY if piece is None else _SYMBOL_TO_CLASS[piece.symbol()]


def piece_of_class(class_id: int) -> chess.Piece | None:
    return None if class_id == EMPTY else chess.Piece.from_symbol(CLASS_SYMBOLS[class_id])


def labels_from_board(board: chess.BaseBoard) -> np.ndarray:
    """64 class ids (int64, a1..h8) of a python-chess board."""
    return np.array([class_of_piece(board.piece_at(sq)) for sq in chess.SQUARES], dtype=np.int64)


def labels_from_fen(fen: str) -> np.ndarray:
    """64 class ids from a FEN; only the piece-placement field is read."""
    placement = fen.strip().split(" ")[0]
    try:
        board = chess.BaseBoard(placement)
    except ValueError as exc:
        raise LabelError(f"invalid FEN piece placement {placement!r}: {exc}") from None
    return labels_from_board(board)


_CLASS_IDS = np.arange(12)[:, None]


def board_from_labels(labels: np.ndarray, turn: chess.Color = chess.WHITE) -> chess.Board:
    """A python-chess board with this placement, ``turn`` to move, no castling rights, no en-passant square.

    Built from bitboards: parsing a FEN costs about 100 microseconds, which the decoders' k-best
    search cannot afford.
    """
    m = np.packbits(np.asarray(labels)[None, :] == _CLASS_IDS, axis=1, bitorder="little").view("<u8")[:, 0].tolist()
    board = chess.Board(None)
    board.pawns, board.rooks, board.knights, board.bishops, board.queens, board.kings = (
        m[t] | m[6 + t] for t in range(6)
    )
    white, black = m[0] | m[1] | m[2] | m[3] | m[4] | m[5], m[6] | m[7] | m[8] | m[9] | m[10] | m[11]
    board.occupied_co = [black, white]  # indexed by colour: chess.BLACK == 0
    board.occupied = white | black
    board.turn = turn
    return board


def fen_from_labels(labels: np.ndarray) -> str:
    """FEN piece placement (first field only) of 64 class ids."""
    if np.asarray(labels).shape != (64,):
        raise LabelError(f"expected 64 square labels, got shape {np.asarray(labels).shape}")
    return board_from_labels(labels).board_fen()


def square_index(name: str) -> int:
    try:
        return chess.parse_square(name.lower())
    except ValueError:
        raise LabelError(f"invalid square name {name!r}") from None


@dataclass
class BoardSample:
    """One photo of a board with its exact labels.

    ``corners`` holds the image positions (x, y pixels) of the four outer corners of the
    playing area in :data:`CORNER_NAMES` order, i.e. the a8, h8, h1 and a1 corners.  Warping
    them to a square therefore always gives the standard diagram view, whatever the camera.
    """

    image_path: Path
    labels: np.ndarray
    corners: np.ndarray
    game_id: str = "0"
    move_id: int = 0
    split: str = "train"
    camera: dict = field(default_factory=dict)

    @property
    def fen(self) -> str:
        return fen_from_labels(self.labels)
