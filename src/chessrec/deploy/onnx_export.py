"""A trained torch square classifier -> one self-describing ONNX file.

The graph takes what inference has at hand, uint8 crops (n, 3, H, W) and square indices (n,),
and returns probabilities (n, C): the card's preprocessing is inside it, so no runtime can feed
it differently from training.  The model card travels in the file's metadata
(:data:`chessrec.inference.card.CARD_KEY`), and the export is verified by loading it back in
ONNX Runtime and comparing probabilities with torch on the same crops.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from chessrec.errors import UserError
from chessrec.fileio import write_atomic
from chessrec.inference.card import CARD_KEY, ModelCard
from chessrec.inference.onnx_backend import CROPS_INPUT, PROBABILITIES_OUTPUT, SQUARES_INPUT, OnnxSquareModel
from chessrec.inference.torch_backend import TorchSquareModel, preprocess
from chessrec.quiet import quiet_library_noise

#: ONNX operator set of the export (the torch exporter's own; ONNX Runtime reads it since 1.14)
OPSET = 18
#: largest |p_onnx - p_torch| an export may show on its verification crops
PARITY_TOLERANCE = 1e-4


class _WithPreprocessing(nn.Module):
    """uint8 crops + squares -> probabilities: the network with its card's preprocessing in front."""

    def __init__(self, network: nn.Module, card: ModelCard):
        super().__init__()
        self.network = network
        self.card = card

    def forward(self, crops: torch.Tensor, squares: torch.Tensor) -> torch.Tensor:
        return self.network(preprocess(crops, self.card.preprocessing), squares).exp()


def to_onnx_bytes(model: TorchSquareModel, example_crops: np.ndarray) -> bytes:
    """The serialised ONNX model of ``model`` (batch size free), its card in the metadata."""
    import onnx

    wrapper = _WithPreprocessing(model.network, model.card).eval()  # eval: no dropout, frozen batch norm
    crops = torch.from_numpy(np.ascontiguousarray(example_crops[:2]))
    squares = torch.arange(len(crops), dtype=torch.int64)
    quiet_library_noise()
    n = torch.export.Dim("n", min=1)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it lists the torchvision ops it skips: this project has none
    try:
        with tempfile.TemporaryDirectory(prefix="chessrec-export-") as scratch, torch.no_grad():
            path = Path(scratch) / "export.onnx"
            torch.onnx.export(wrapper, (crops, squares), str(path), dynamo=True, opset_version=OPSET, verbose=False,
                              input_names=[CROPS_INPUT, SQUARES_INPUT], output_names=[PROBABILITIES_OUTPUT],
                              dynamic_shapes=({0: n}, {0: n}))
            proto = onnx.load(str(path))
    finally:
        exporter_log.setLevel(level)
    set_card(proto, model.card)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def set_card(proto, card: ModelCard) -> None:
    """Store ``card`` as JSON in the ONNX metadata (replacing an older one)."""
    for entry in list(proto.metadata_props):
        if entry.key == CARD_KEY:
            proto.metadata_props.remove(entry)
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_KEY, json.dumps(card.to_dict(), sort_keys=True)


def max_probability_difference(a, b, crops: np.ndarray) -> float:
    """Largest |p_a - p_b| of two square models on the same (N, 64, 3, H, W) crops of their one spec."""
    (name,) = a.crop_specs
    squares = np.tile(np.arange(64), len(crops))
    flat = {name: crops.reshape(-1, *crops.shape[2:])}
    return float(np.abs(a.predict_squares(flat, squares) - b.predict_squares(flat, squares)).max())


def export_onnx(model: TorchSquareModel, out_path: Path, verify_crops: np.ndarray,
                tolerance: float = PARITY_TOLERANCE) -> float:
    """Write ``model`` to ``out_path`` as ONNX, load it back in ONNX Runtime and check parity.

    ``verify_crops`` are (N, 64, 3, H, W) uint8 board crops of the model's spec.  Returns the
    largest probability difference; an export beyond ``tolerance`` is not written.
    """
    out_path = Path(out_path)
    data = to_onnx_bytes(model, verify_crops.reshape(-1, *verify_crops.shape[2:]))
    staged = out_path.with_name(f".{out_path.name}.verify")
    staged.write_bytes(data)
    try:
        difference = max_probability_difference(model, OnnxSquareModel(staged, threads=1), verify_crops)
    finally:
        staged.unlink()
    if not difference <= tolerance:
        raise UserError(f"{out_path}: the ONNX export differs from the torch model by {difference:.3g} in "
                        f"probability (tolerance {tolerance:g}); not written")
    write_atomic(out_path, data)
    return difference
