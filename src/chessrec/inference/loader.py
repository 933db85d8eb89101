"""One loader for every saved model: the file decides the backend, the messages are the same.

A model is a checkpoint (``.ckpt``: Lightning's, written by the ``train`` stage, or an ensemble
written by ``chessrec ensemble``) read by the torch backend without importing Lightning, or an
ONNX file (``.onnx``, written by ``chessrec export``) run by ONNX Runtime without importing torch;
the table :data:`BACKENDS` maps the suffix to the backend.  Every failure is one
:class:`~chessrec.errors.UserError` line naming the file.
"""

from __future__ import annotations

import functools
import pickle
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chessrec.errors import UserError
from chessrec.geometry import OCCUPANCY_CROPS, PIECE_CROPS
from chessrec.inference.card import CARD_KEY, SQUARE_CROPS, ModelCard, Preprocessing, is_cascade, stage_cards
from chessrec.inference.ensemble import ensemble_of, is_ensemble, member_cards, member_weights
from chessrec.inference.model import Cascade, SquareModel
from chessrec.labels import CLASS_NAMES

#: the model ``dvc repro`` trains
DEFAULT_MODEL = Path("models/classifier.ckpt")
#: the model that ships with the package (the ``full`` profile's; see ``released/README.md``)
RELEASED_MODEL = Path(__file__).resolve().parents[1] / "released" / "classifier.ckpt"


def default_model() -> Path:
    """The pipeline's model when ``dvc repro`` has made one here, else the released model."""
    return DEFAULT_MODEL if DEFAULT_MODEL.is_file() or not RELEASED_MODEL.is_file() else RELEASED_MODEL


def card_from_checkpoint(checkpoint: Mapping[str, Any], source: str) -> ModelCard:
    """The checkpoint's card; checkpoints written before cards existed get one from their hyperparameters."""
    if CARD_KEY in checkpoint:
        return ModelCard.from_dict(checkpoint[CARD_KEY], source)
    try:
        hp = checkpoint["hyper_parameters"]
        model, features, train = hp["model"], hp["features"], hp["train"]
        raw = {
            "architecture": {"name": model["name"], "width": model["width"], "dropout": model["dropout"],
                             "head": train["head"]},
            "crop_specs": {SQUARE_CROPS: hp["crop_spec"]},
            "class_names": list(CLASS_NAMES),
            "preprocessing": {**asdict(Preprocessing()), "square_inputs": bool(features["extra_inputs"])},
            "provenance": {"params": {k: hp[k] for k in ("model", "features", "train")}},
        }
    except (KeyError, TypeError) as exc:
        raise UserError(f"{source}: not a chessrec checkpoint (no model card, and no {exc} in its "
                        "hyperparameters)") from None
    return ModelCard.from_dict(raw, source)


def load_torch_checkpoint(path: Path, device: str = "cpu"):
    """A :class:`~chessrec.inference.torch_backend.TorchSquareModel` from a checkpoint, a
    :class:`~chessrec.inference.model.Cascade` of two when the card names a two-stage system, or an
    :class:`~chessrec.inference.ensemble.Ensemble` of those when it names members."""
    checkpoint, card = read_checkpoint(path, device)
    return model_from_checkpoint(checkpoint, card, str(path), device)


def read_checkpoint(path: Path, device: str = "cpu") -> tuple[dict[str, Any], ModelCard]:
    """A checkpoint's contents and card, read without running pickled code (one line naming the file if not)."""
    import torch

    if not Path(path).is_file():
        raise UserError(f"{path}: model file not found")
    if not zipfile.is_zipfile(path):  # torch checkpoints are zip archives; a cut-off one has no directory
        raise UserError(f"{path}: not a chessrec checkpoint (not a torch zip archive, or truncated)")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:  # weights-only refused an object: never run its code
        raise UserError(f"{path}: refused: unpickling it would run code or build objects that a model "
                        f"file does not need ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a chessrec checkpoint (truncated or corrupt: {_first_line(exc)})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise UserError(f"{path}: not a chessrec checkpoint (no state_dict)")
    return checkpoint, card_from_checkpoint(checkpoint, str(path))


def model_from_checkpoint(checkpoint: Mapping[str, Any], card: ModelCard, source: str, device: str = "cpu"):
    """The model a checkpoint read by :func:`read_checkpoint` holds (weights that do not fit: one line)."""
    if is_ensemble(card):
        return ensemble_of([_torch_model(member, member_weights(checkpoint["state_dict"], i), f"{source} (member {i})",
                                         device) for i, member in enumerate(member_cards(card, source))], card, source)
    return _torch_model(card, checkpoint["state_dict"], source, device)


def _torch_model(card: ModelCard, state_dict: Mapping[str, Any], source: str, device: str):
    """One network, or a cascade of two, rebuilt from ``card`` and loaded with ``state_dict``."""
    from chessrec.inference.torch_backend import TorchSquareModel, build_network

    stages = {}
    for prefix, stage_card in stage_cards(card).items():
        network = build_network(stage_card)
        weights = {k[len(prefix) + 1:]: v for k, v in state_dict.items() if k.startswith(f"{prefix}.")}
        try:
            network.load_state_dict(weights)
        except RuntimeError as exc:
            network_name = "" if prefix == "net" else f" ({prefix} network)"
            raise UserError(f"{source}: weights do not fit the architecture its card names{network_name} "
                            f"({_state_dict_mismatch(exc)})") from None
        stages[prefix] = TorchSquareModel(network, stage_card, device)
    if not is_cascade(card):
        return stages["net"]
    return Cascade(stages[OCCUPANCY_CROPS], stages[PIECE_CROPS], card=card)


def load_onnx_model(path: Path, device: str = "cpu"):
    """The model of an exported ONNX file, run by ONNX Runtime on the CPU (see :func:`open_onnx_model`)."""
    if device != "cpu":
        raise UserError(f"{path}: the ONNX backend runs on the CPU, not {device!r}")
    from chessrec.inference.onnx_backend import open_onnx_model

    return open_onnx_model(path)


#: file suffix -> loader(path, device)
BACKENDS: dict[str, Callable[..., SquareModel]] = {".ckpt": load_torch_checkpoint, ".onnx": load_onnx_model}


def load_model(model: SquareModel | Path | str | None = None, device: str = "cpu") -> SquareModel:
    """A square model: a loaded one passed through, or read from a file (cached while it is unchanged).

    ``None`` means :func:`default_model`: the pipeline's model, else the released one.
    """
    if model is not None and isinstance(model, SquareModel):
        return model
    path = Path(model) if model is not None else default_model()
    if not path.is_file():
        raise UserError(f"{path}: model file not found (run `dvc repro` or pass --model)")
    if path.suffix not in BACKENDS:
        raise UserError(f"{path}: unknown model format {path.suffix!r} (expected one of {', '.join(BACKENDS)})")
    stat = path.stat()
    return _cached(path.resolve(), stat.st_mtime_ns, stat.st_size, device)


@functools.lru_cache(maxsize=4)
def _cached(path: Path, mtime_ns: int, size: int, device: str) -> SquareModel:
    return BACKENDS[path.suffix](path, device)


def _state_dict_mismatch(exc: BaseException) -> str:
    """What ``load_state_dict``'s error says is wrong: its first tab-indented line (the keys or the
    shapes), not its first line, which names only the module."""
    details = [line.strip() for line in str(exc).splitlines() if line.startswith("\t")]
    if not details:
        return _first_line(exc)
    what, _, keys = details[0].partition(" in state_dict: ")
    listed = [key.strip(' ".') for key in keys.split(", ")] if keys else []
    return f"{what}: {listed[0]} and {len(listed) - 1} more" if len(listed) > 1 else details[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
