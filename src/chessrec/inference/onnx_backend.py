"""The ONNX Runtime backend: an exported square classifier, with its model card in the file's metadata.

``chessrec export`` writes the network with its preprocessing inside (uint8 crops and square
indices in, probabilities out), so this backend needs onnxruntime and numpy only: no torch.
A two-stage cascade ships as one file holding both graphs (see :class:`OnnxSquareModel`), and an
ensemble as one file holding every member's graphs under ``members.<i>.``.
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


def open_session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session for ``path`` (one-line error for a file ORT cannot read)."""
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


def read_card(session, path: Path) -> ModelCard:
    """The model card stored in an ONNX file's metadata."""
    metadata = session.get_modelmeta().custom_metadata_map
    if CARD_KEY not in metadata:
        raise UserError(f"{path}: not a chessrec model (no {CARD_KEY!r} in its ONNX metadata; "
                        "export it with `chessrec export`)")
    try:
        raw = json.loads(metadata[CARD_KEY])
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: its model card is not valid JSON ({exc})") from None
    return ModelCard.from_dict(raw, str(path))


class OnnxSquareModel(SingleSpecModel):
    """One network of an exported file, run in ONNX Runtime: a :class:`chessrec.inference.SquareModel`.

    A single classifier's graph has inputs ``crops``, ``squares`` and output ``probabilities``.  A
    cascade's file holds both stages as one graph, each stage's names prefixed (``occupancy.crops``,
    ...), and an ensemble's file every member's under ``members.<i>.``; a network is run by feeding
    every other network in the file an empty batch, so the piece network still runs only on the
    squares the occupancy network finds occupied.
    """

    def __init__(self, path: Path | str, threads: int | None = None, *, session=None,
                 card: ModelCard | None = None, prefix: str = ""):
        self.path = Path(path)
        self.session = session if session is not None else open_session(self.path, threads)
        self.card = card if card is not None else read_card(self.session, self.path)
        if len(self.card.crop_specs) != 1:
            raise UserError(f"{self.path}: one ONNX network reads one crop spec, its card names "
                            f"{list(self.card.crop_specs)}")
        self.prefix = prefix
        self._idle = self._check_signature()

    def _check_signature(self) -> dict[str, np.ndarray]:
        """Check this stage's inputs and output against the card; return empty feeds for any other stage."""
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        mine = [self.prefix + CROPS_INPUT, self.prefix + SQUARES_INPUT]
        output = self.prefix + PROBABILITIES_OUTPUT
        if not set(mine) <= set(inputs) or output not in outputs:
            raise UserError(f"{self.path}: graph has inputs {sorted(inputs)} and outputs {sorted(outputs)}, a chessrec "
                            f"model has inputs {mine} and output {output!r}")
        crops = inputs[mine[0]]
        expected = [3, *self.crop_spec.output_shape]
        if crops.type != "tensor(uint8)" or list(crops.shape[1:]) != expected:
            raise UserError(f"{self.path}: input {mine[0]!r} is {crops.type} {crops.shape}, its card's crop spec "
                            f"needs uint8 (n, {', '.join(map(str, expected))})")
        classes = outputs[output].shape[-1]
        if classes != len(self.card.class_names):
            raise UserError(f"{self.path}: output has {classes} classes, its card names {len(self.card.class_names)}")
        idle = {}
        for name, spec in inputs.items():
            if name not in mine:
                dtype = np.uint8 if spec.type == "tensor(uint8)" else np.int64
                idle[name] = np.zeros([0, *spec.shape[1:]], dtype=dtype)
        return idle

    def predict_squares(self, crops: BoardCrops, squares: np.ndarray) -> np.ndarray:
        """(M, 3, H, W) uint8 crops of the card's spec and (M,) square indices -> (M, C) probabilities."""
        feed = {self.prefix + CROPS_INPUT: np.ascontiguousarray(crops[self.spec_name], dtype=np.uint8),
                self.prefix + SQUARES_INPUT: np.asarray(squares, dtype=np.int64), **self._idle}
        (probabilities,) = self.session.run([self.prefix + PROBABILITIES_OUTPUT], feed)
        return probabilities.astype(np.float32, copy=False)


def network_prefixes(card: ModelCard, source: str, prefix: str = "") -> list[tuple[str, str]]:
    """(crop spec name, name prefix) of every network in the exported file of ``card``.

    One network has no prefix; a cascade's stages are prefixed with their spec's name
    (``occupancy.``); an ensemble's members with ``members.<i>.`` before their own prefixes.
    """
    from chessrec.inference.card import is_cascade, stage_cards
    from chessrec.inference.ensemble import MEMBERS, is_ensemble, member_cards

    if is_ensemble(card):
        return [pair for i, member in enumerate(member_cards(card, source))
                for pair in network_prefixes(member, source, f"{prefix}{MEMBERS}.{i}.")]
    if is_cascade(card):
        return [(spec, f"{prefix}{spec}.") for spec in stage_cards(card)]
    return [(next(iter(card.crop_specs)), prefix)]


def _onnx_model(path: Path, session, card: ModelCard, prefix: str):
    from chessrec.geometry import OCCUPANCY_CROPS, PIECE_CROPS
    from chessrec.inference.card import is_cascade, stage_cards
    from chessrec.inference.ensemble import MEMBERS, ensemble_of, is_ensemble, member_cards
    from chessrec.inference.model import Cascade

    if is_ensemble(card):
        return ensemble_of([_onnx_model(path, session, member, f"{prefix}{MEMBERS}.{i}.")
                            for i, member in enumerate(member_cards(card, str(path)))], card, str(path))
    if not is_cascade(card):
        return OnnxSquareModel(path, session=session, card=card, prefix=prefix)
    stages = {name: OnnxSquareModel(path, session=session, card=stage_card, prefix=f"{prefix}{name}.")
              for name, stage_card in stage_cards(card).items()}
    return Cascade(stages[OCCUPANCY_CROPS], stages[PIECE_CROPS], card=card)


def open_onnx_model(path: Path | str, threads: int | None = None):
    """The square model in an exported file: one network, a cascade of the two stages it holds, or an
    ensemble of such members."""
    path = Path(path)
    session = open_session(path, threads)
    return _onnx_model(path, session, read_card(session, path), "")
