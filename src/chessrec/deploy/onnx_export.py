"""A trained torch square classifier (one network, a cascade or an ensemble) -> one self-describing ONNX file.

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
from chessrec.geometry import OCCUPANCY_CROPS, PIECE_CROPS
from chessrec.inference.card import CARD_KEY, ModelCard
from chessrec.inference.ensemble import MEMBERS, Ensemble
from chessrec.inference.model import BoardCrops, Cascade, SquareModel
from chessrec.inference.onnx_backend import CROPS_INPUT, PROBABILITIES_OUTPUT, SQUARES_INPUT, open_onnx_model
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


def _network_proto(model: TorchSquareModel, example_crops: np.ndarray):
    """The ONNX graph of one torch network with its preprocessing (batch size free)."""
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
            return onnx.load(str(path))
    finally:
        exporter_log.setLevel(level)


def _prefixed(proto, prefix: str):
    """Every name in the graph prefixed, symbolic dimensions included: the stages' batch sizes differ."""
    import onnx

    proto = onnx.compose.add_prefix(proto, prefix)
    for value in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = prefix + dim.dim_param
    return proto


def _merged(protos: list):
    """One graph holding every (already prefixed) graph of ``protos`` side by side."""
    import onnx

    proto = protos[0]
    for other in protos[1:]:
        proto = onnx.compose.merge_models(proto, other, io_map=[])
    unique = {(o.domain, o.version): o for o in proto.opset_import}  # merging lists each opset twice
    del proto.opset_import[:]
    proto.opset_import.extend(unique.values())
    return proto


def _model_proto(model: SquareModel, example_crops: BoardCrops, what: str = "the model"):
    """The ONNX graph of a torch network, a cascade of two, or an ensemble of such members."""
    if isinstance(model, TorchSquareModel):
        return _network_proto(model, example_crops[model.spec_name])
    if isinstance(model, Cascade) and all(isinstance(stage, TorchSquareModel) for stage in (model.occupancy, model.piece)):
        return _merged([_prefixed(_network_proto(stage, example_crops[stage.spec_name]), f"{name}.")
                        for name, stage in ((OCCUPANCY_CROPS, model.occupancy), (PIECE_CROPS, model.piece))])
    if isinstance(model, Ensemble):
        return _merged([_prefixed(_model_proto(member, example_crops, f"ensemble member {i}"), f"{MEMBERS}.{i}.")
                        for i, member in enumerate(model.members)])
    raise UserError(f"cannot export {what}, a {type(model).__name__}: only torch checkpoints (one network, a "
                    "cascade or an ensemble of them) export to ONNX")


def to_onnx_bytes(model: TorchSquareModel | Cascade | Ensemble, example_crops: BoardCrops) -> bytes:
    """The serialised ONNX model of ``model``, its card in the metadata.

    ``example_crops`` are (M, 3, H, W) uint8 crops per spec name.  A cascade's two networks go into
    one graph, each stage's inputs, output and nodes prefixed with its name, and an ensemble's
    members likewise under ``members.<i>.`` (see :func:`chessrec.inference.onnx_backend.network_prefixes`).
    The members' probabilities are combined by the backend, as for torch members.
    """
    import onnx

    card = getattr(model, "card", None)
    if card is None:
        raise UserError(f"cannot export a {type(model).__name__} without its model card: load it from a checkpoint")
    proto = _model_proto(model, example_crops)
    set_card(proto, card)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def set_card(proto, card: ModelCard) -> None:
    """Store ``card`` as JSON in the ONNX metadata (replacing an older one)."""
    for entry in list(proto.metadata_props):
        if entry.key == CARD_KEY:
            proto.metadata_props.remove(entry)
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_KEY, json.dumps(card.to_dict(), sort_keys=True)


def max_probability_difference(a: SquareModel, b: SquareModel, crops: BoardCrops) -> float:
    """Largest |p_a - p_b| of two square models on the same (N, 64, 3, H, W) board crops per spec."""
    return float(np.abs(a.predict_proba(crops) - b.predict_proba(crops)).max())


def export_onnx(model: TorchSquareModel | Cascade | Ensemble, out_path: Path, verify_crops: BoardCrops,
                tolerance: float = PARITY_TOLERANCE) -> float:
    """Write ``model`` to ``out_path`` as ONNX, load it back in ONNX Runtime and check parity.

    ``verify_crops`` are (N, 64, 3, H, W) uint8 board crops per spec name.  Returns the largest
    probability difference; an export beyond ``tolerance`` is not written.
    """
    out_path = Path(out_path)
    data = to_onnx_bytes(model, {name: c.reshape(-1, *c.shape[2:]) for name, c in verify_crops.items()})
    staged = out_path.with_name(f".{out_path.name}.verify")
    staged.write_bytes(data)
    try:
        difference = max_probability_difference(model, open_onnx_model(staged, threads=1), verify_crops)
    finally:
        staged.unlink()
    if not difference <= tolerance:
        raise UserError(f"{out_path}: the ONNX export differs from the torch model by {difference:.3g} in "
                        f"probability (tolerance {tolerance:g}); not written")
    write_atomic(out_path, data)
    return difference
