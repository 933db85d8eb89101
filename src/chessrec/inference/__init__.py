"""Inference: the square-model interface, model cards, and the one loader for every backend.

Nothing here imports Lightning: recognising a photo needs only the model file and torch.
"""

from chessrec.inference.card import SQUARE_CROPS, ModelCard, Preprocessing
from chessrec.inference.loader import DEFAULT_MODEL, load_model
from chessrec.inference.model import BoardCrops, BoardPredictions, Cascade, SquareModel, check_board_crops, cut_crops

__all__ = [
    "DEFAULT_MODEL", "SQUARE_CROPS", "BoardCrops", "BoardPredictions", "Cascade", "ModelCard", "Preprocessing",
    "SquareModel", "check_board_crops", "cut_crops", "load_model",
]
