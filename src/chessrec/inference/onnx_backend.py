"""The ONNX Runtime backend: an exported square classifier, with its model card in the file's metadata.

``chessrec export`` writes the network with its preprocessing inside (uint8 crops and square
indices in, probabilities out), so this backend needs onnxruntime and numpy only: no torch.
The file is checked against its card before the first crop is scored, so an ONNX file of some
other model fails with one line naming what does not fit, not with a shape error deep in a run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from chessrec.errors import UserError
from chessrec.inference.card import CARD_KEY, ModelCard
from chessrec.inference.model import BoardCrops, SingleSpecModel

#: graph input and output names shared by the exporter and this backend
CROPS_INPUT, SQUARES_INPUT, PROBABILITIES_OUTPUT = "crops", "squares", "probabilities"


def _session(path: Path, threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings are about graph rewrites, not the user
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf / InvalidGraph types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path}: not a usable ONNX model (truncated or corrupt: {first[:200]})") from None


class OnnxSquareModel(SingleSpecModel):
    """A :class:`chessrec.inference.SquareModel` running an exported network in ONNX Runtime."""

    def __init__(self, path: Path | str, threads: int | None = None):
        self.path = Path(path)
        self.session = _session(self.path, threads)
        metadata = self.session.get_modelmeta().custom_metadata_map
        if CARD_KEY not in metadata:
            raise UserError(f"{self.path}: not a chessrec model (no {CARD_KEY!r} in its ONNX metadata; "
                            "export it with `chessrec export`)")
        try:
            raw = json.loads(metadata[CARD_KEY])
        except json.JSONDecodeError as exc:
            raise UserError(f"{self.path}: its model card is not valid JSON ({exc})") from None
        self.card = ModelCard.from_dict(raw, str(self.path))
        if len(self.card.crop_specs) != 1:
            raise UserError(f"{self.path}: one ONNX network reads one crop spec, its card names "
                            f"{list(self.card.crop_specs)}")
        self._check_signature()

    def _check_signature(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if set(inputs) != {CROPS_INPUT, SQUARES_INPUT} or PROBABILITIES_OUTPUT not in outputs:
            raise UserError(f"{self.path}: graph has inputs {sorted(inputs)} and outputs {sorted(outputs)}, a chessrec "
                            f"model has inputs {[CROPS_INPUT, SQUARES_INPUT]} and output {PROBABILITIES_OUTPUT!r}")
        crops = inputs[CROPS_INPUT]
        expected = [3, *self.crop_spec.output_shape]
        if crops.type != "tensor(uint8)" or list(crops.shape[1:]) != expected:
            raise UserError(f"{self.path}: input {CROPS_INPUT!r} is {crops.type} {crops.shape}, its card's crop spec "
                            f"needs uint8 (n, {', '.join(map(str, expected))})")
        classes = outputs[PROBABILITIES_OUTPUT].shape[-1]
        if classes != len(self.card.class_names):
            raise UserError(f"{self.path}: output has {classes} classes, its card names {len(self.card.class_names)}")

    def predict_squares(self, crops: BoardCrops, squares: np.ndarray) -> np.ndarray:
        """(M, 3, H, W) uint8 crops of the card's spec and (M,) square indices -> (M, C) probabilities."""
        feed = {CROPS_INPUT: np.ascontiguousarray(crops[self.spec_name], dtype=np.uint8),
                SQUARES_INPUT: np.asarray(squares, dtype=np.int64)}
        (probabilities,) = self.session.run([PROBABILITIES_OUTPUT], feed)
        return probabilities.astype(np.float32, copy=False)
