"""The torch backend: a square classifier rebuilt from its model card and weights, no Lightning.

Training saves Lightning checkpoints; inference reads them with plain ``torch.load`` in
weights-only mode (no pickled code is ever run) and rebuilds the network from the card, so
recognising a photo needs torch and the architectures of :mod:`chessrec.models`, nothing more.
"""

from __future__ import annotations

import numpy as np
import torch

from chessrec.inference.card import ModelCard, Preprocessing
from chessrec.inference.model import BoardCrops, SingleSpecModel
from chessrec.models import SquareClassifier


def preprocess(crops_u8: torch.Tensor, preprocessing: Preprocessing = Preprocessing()) -> torch.Tensor:
    """uint8 crops -> the float input the network was trained on (training uses this same function).

    Channels-last memory: the convolutions ran about 1.2x faster in that layout on CPU when the
    architectures were chosen (docs/correctness.md).
    """
    x = crops_u8.float().div_(preprocessing.divisor).sub_(preprocessing.mean)
    return x.contiguous(memory_format=torch.channels_last)


def build_network(card: ModelCard) -> SquareClassifier:
    a = card.architecture
    network = SquareClassifier(a["name"], int(a["width"]), float(a["dropout"]), a.get("head", "single"),
                               card.preprocessing.square_inputs, num_classes=len(card.class_names))
    return network.to(memory_format=torch.channels_last)


class TorchSquareModel(SingleSpecModel):
    """A :class:`chessrec.inference.SquareModel` running a torch network that reads one crop spec."""

    def __init__(self, network: torch.nn.Module, card: ModelCard, device: str | torch.device = "cpu"):
        if len(card.crop_specs) != 1:
            raise ValueError(f"a torch square network reads one crop spec, the card names {list(card.crop_specs)}")
        self.card = card
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()

    @torch.inference_mode()
    def predict_squares(self, crops: BoardCrops, squares: np.ndarray) -> np.ndarray:
        """(M, 3, H, W) uint8 crops of the card's spec and (M,) square indices -> (M, C) probabilities."""
        x = preprocess(torch.from_numpy(np.ascontiguousarray(crops[self.spec_name])).to(self.device),
                       self.card.preprocessing)
        log_probs = self.network(x, torch.from_numpy(np.asarray(squares, dtype=np.int64)).to(self.device))
        return log_probs.exp().cpu().numpy().astype(np.float32, copy=False)
