"""The square-model interface every caller uses, and a cascade built from two models.

Callers (evaluation, ``chessrec predict``, the recognizer, scripts and benchmarks) only ever
ask a model for its crop specs and for class probabilities over crops cut by those specs; they
never know whether it is one network, two in a cascade, or an ONNX session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from chessrec.errors import UserError
from chessrec.geometry import CropSpec, square_crops
from chessrec.inference.card import ModelCard
from chessrec.labels import CLASS_NAMES, EMPTY, NUM_CLASSES

#: (N, 64, 3, H, W) uint8 crops per crop spec name
BoardCrops = Mapping[str, np.ndarray]


@runtime_checkable
class SquareModel(Protocol):
    """A classifier of board squares.

    ``predict_squares`` scores M squares given their crops by spec name ((M, 3, H, W) uint8 each)
    and their square indices (a1 = 0); ``predict_proba`` scores whole boards.  Outputs are
    probabilities in ``class_names`` order, which for a board recogniser is
    :data:`chessrec.labels.CLASS_NAMES`.
    """

    @property
    def crop_specs(self) -> Mapping[str, CropSpec]: ...

    @property
    def class_names(self) -> tuple[str, ...]: ...

    def predict_squares(self, crops: BoardCrops, squares: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, crops: BoardCrops) -> np.ndarray: ...


class BoardPredictions:
    """``predict_proba`` for whole boards, on top of a model's ``predict_squares``."""

    #: boards per forward pass: bounds memory, keeps the batch large enough to be efficient
    batch_boards: int = 16

    def predict_proba(self, crops: BoardCrops) -> np.ndarray:
        """(N, 64, 3, H, W) uint8 crops per spec -> (N, 64, C) float32 probabilities."""
        arrays = check_board_crops(self.crop_specs, crops)
        n = next(iter(arrays.values())).shape[0]
        out = np.empty((n, 64, len(self.class_names)), dtype=np.float32)
        for start in range(0, n, self.batch_boards):
            stop = min(start + self.batch_boards, n)
            chunk = {name: a[start:stop].reshape(-1, *a.shape[2:]) for name, a in arrays.items()}
            squares = np.tile(np.arange(64), stop - start)
            out[start:stop] = self.predict_squares(chunk, squares).reshape(stop - start, 64, -1)
        return out


class SingleSpecModel(BoardPredictions):
    """A network described by its model card (``self.card``) that reads one crop spec: every backend."""

    card: ModelCard

    @property
    def crop_specs(self) -> Mapping[str, CropSpec]:
        return self.card.crop_specs

    @property
    def crop_spec(self) -> CropSpec:
        """The one spec this network reads."""
        (spec,) = self.card.crop_specs.values()
        return spec

    @property
    def spec_name(self) -> str:
        (name,) = self.card.crop_specs
        return name

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.card.class_names


def check_board_crops(specs: Mapping[str, CropSpec], crops: BoardCrops) -> dict[str, np.ndarray]:
    """The crops a model needs, each (N, 64, 3, H, W) uint8 of its spec's shape, N equal for all."""
    arrays = {}
    for name, spec in specs.items():
        if name not in crops:
            raise UserError(f"crops for spec {name!r} missing (have {sorted(crops)}); re-run featurize "
                            "with the model's features params")
        a = np.asarray(crops[name])
        if a.ndim != 5 or a.shape[1:3] != (64, 3) or a.shape[3:] != spec.output_shape or a.dtype != np.uint8:
            raise UserError(f"crops {name!r} are {a.shape} {a.dtype}, the model expects "
                            f"(N, 64, 3, {spec.output_shape[0]}, {spec.output_shape[1]}) uint8")
        arrays[name] = a
    if len({a.shape[0] for a in arrays.values()}) > 1:
        raise UserError(f"crop sets hold different numbers of boards: { {k: a.shape[0] for k, a in arrays.items()} }")
    return arrays


def cut_crops(model: SquareModel, image: np.ndarray, corners) -> dict[str, np.ndarray]:
    """The 64 crops of one photo for every spec the model reads: {name: (64, 3, H, W) uint8}."""
    return {name: square_crops(image, corners, spec) for name, spec in model.crop_specs.items()}


def board_probabilities(model: SquareModel, image: np.ndarray, corners) -> np.ndarray:
    """(64, 13) class probabilities of one photo's board, for corners in a8, h8, h1, a1 order."""
    crops = cut_crops(model, image, corners)
    return model.predict_proba({name: c[None] for name, c in crops.items()})[0]


class Cascade(BoardPredictions):
    """Two-stage recognition: an occupancy model on every square, a piece model on occupied ones.

    The occupancy model outputs ``("empty", "occupied")``; the piece model the 12 piece classes
    in :data:`CLASS_NAMES` order.  p(piece) = p(occupied) * p(piece | occupied), so decoders
    see one (64, 13) distribution.  Squares whose p(occupied) is below ``min_occupied`` skip the
    piece model (their piece mass is spread evenly): the cost goes where the pieces are.
    """

    def __init__(self, occupancy: SquareModel, piece: SquareModel, min_occupied: float = 1e-3,
                 card: ModelCard | None = None):
        if tuple(occupancy.class_names) != ("empty", "occupied"):
            raise UserError(f"cascade occupancy model must output ('empty', 'occupied'), got {occupancy.class_names}")
        if tuple(piece.class_names) != CLASS_NAMES[:EMPTY]:
            raise UserError(f"cascade piece model must output the 12 piece classes, got {piece.class_names}")
        clash = set(occupancy.crop_specs) & set(piece.crop_specs)
        if clash and any(occupancy.crop_specs[n] != piece.crop_specs[n] for n in clash):
            raise UserError(f"cascade models use different crops under the same spec name(s) {sorted(clash)}")
        self.occupancy, self.piece, self.min_occupied = occupancy, piece, min_occupied
        self.card = card  # the checkpoint's card when loaded from one (its provenance)

    @property
    def crop_specs(self) -> dict[str, CropSpec]:
        return {**self.occupancy.crop_specs, **self.piece.crop_specs}

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES

    def predict_squares(self, crops: BoardCrops, squares: np.ndarray) -> np.ndarray:
        occupancy = self.occupancy.predict_squares({n: crops[n] for n in self.occupancy.crop_specs}, squares)
        occupied = occupancy[:, 1].astype(np.float32)
        out = np.empty((len(squares), NUM_CLASSES), dtype=np.float32)
        out[:, EMPTY] = occupancy[:, 0]
        out[:, :EMPTY] = (occupied / EMPTY)[:, None]
        busy = np.flatnonzero(occupied >= self.min_occupied)
        if busy.size:
            pieces = self.piece.predict_squares({n: crops[n][busy] for n in self.piece.crop_specs}, squares[busy])
            out[busy, :EMPTY] = occupied[busy, None] * pieces
        return out
