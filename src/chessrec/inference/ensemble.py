"""Several trained models reading the same crops, their probabilities combined: one model to callers.

Why: two models trained on different renders (another seed, image size or data size) make partly
independent mistakes on photos unlike any render, so the classes both believe in survive and the
ones only one believes in are damped, as with the mirror views of :mod:`chessrec.inference.views`.
On the real-dev photos the `full` and `default` models read 91.25% and 90.8% of squares, their
geometric mean 92.55% (docs/correctness.md).

An ensemble is one checkpoint file. Its card's architecture is ``{"system": "ensemble",
"combine": "geometric-mean", "members": [card, ...]}``, each member's own card (a single network
or a cascade), and each member's weights sit under ``members.<i>.`` in the ``state_dict``. So it
loads through :func:`chessrec.inference.loader.load_model`, predicts, broadcasts and adapts
(each member adapted on the same photos) like any other model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chessrec.errors import UserError
from chessrec.geometry import CropSpec
from chessrec.inference.card import CARD_KEY, CARD_VERSION, ModelCard, Preprocessing
from chessrec.inference.model import BoardCrops, BoardPredictions, SquareModel
from chessrec.inference.views import mean_of_views

#: ``architecture["system"]`` of an ensemble card
ENSEMBLE = "ensemble"
#: how members' probabilities are combined: the renormalised geometric mean
GEOMETRIC_MEAN = "geometric-mean"
#: ``state_dict`` prefix of member ``i``'s weights: ``members.<i>.``
MEMBERS = "members"
#: the card layout that introduced ensembles (an older chessrec refuses the file in one line)
ENSEMBLE_CARD_VERSION = 3
assert ENSEMBLE_CARD_VERSION <= CARD_VERSION


class Ensemble(BoardPredictions):
    """Square models read on the same crops; the renormalised geometric mean of their probabilities.

    Members must output the same classes, and any crop spec two members share by name must be the
    same crop: each spec is cut once per photo and read by every member that names it.
    """

    def __init__(self, members: Sequence[SquareModel], card: ModelCard | None = None):
        self._specs = agreed_crop_specs([(m.crop_specs, m.class_names) for m in members])
        self.members = tuple(members)
        self.card = card  # the checkpoint's card when loaded from one (its provenance)

    @property
    def crop_specs(self) -> dict[str, CropSpec]:
        return dict(self._specs)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.members[0].class_names)

    def predict_squares(self, crops: BoardCrops, squares: np.ndarray) -> np.ndarray:
        return mean_of_views(*(m.predict_squares({n: crops[n] for n in m.crop_specs}, squares) for m in self.members))


def ensemble_of(members: Sequence[SquareModel], card: ModelCard, source: str) -> Ensemble:
    """The :class:`Ensemble` a file's card describes, from its loaded members (whatever their backend);
    members that disagree are one line naming ``source``."""
    try:
        return Ensemble(members, card=card)
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None


def agreed_crop_specs(members: Sequence[tuple[Mapping[str, CropSpec], Sequence[str]]]) -> dict[str, CropSpec]:
    """The crop specs of members given as (crop specs, class names): all of them, once each by name.

    Members must output the same classes and cut the same crop under a shared name (one line
    naming the member that does not).
    """
    if len(members) < 2:
        raise UserError(f"an ensemble needs at least 2 models, got {len(members)}")
    classes = {tuple(names) for _, names in members}
    if len(classes) > 1:
        raise UserError(f"ensemble members output different classes: {sorted(classes)}")
    specs: dict[str, CropSpec] = {}
    for index, (member_specs, _) in enumerate(members):
        for name, spec in member_specs.items():
            if specs.setdefault(name, spec) != spec:
                raise UserError(f"ensemble member {index} cuts {name!r} crops as {spec}, an earlier member "
                                f"as {specs[name]}: members must cut the same crops under one name")
    return specs


def is_ensemble(card: ModelCard) -> bool:
    return card.architecture.get("system") == ENSEMBLE


def member_cards(card: ModelCard, source: str) -> list[ModelCard]:
    """The members' own cards (single networks or cascades: an ensemble of ensembles is refused)."""
    raw = card.architecture.get("members")
    if not isinstance(raw, list) or len(raw) < 2:
        raise UserError(f"{source}: malformed ensemble card (its architecture lists no 2 or more members)")
    if card.architecture.get("combine", GEOMETRIC_MEAN) != GEOMETRIC_MEAN:
        raise UserError(f"{source}: ensemble combines by {card.architecture.get('combine')!r}; "
                        f"this chessrec knows {GEOMETRIC_MEAN!r}")
    cards = [ModelCard.from_dict(member, f"{source} (member {i})") for i, member in enumerate(raw)]
    if any(is_ensemble(member) for member in cards):
        raise UserError(f"{source}: an ensemble member is itself an ensemble; list its members instead")
    return cards


def member_weights(state_dict: Mapping[str, Any], index: int) -> dict[str, Any]:
    """Member ``index``'s own ``state_dict`` (its keys without the ``members.<i>.`` prefix)."""
    prefix = f"{MEMBERS}.{index}."
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}


def ensemble_card(cards: Sequence[ModelCard], provenance: Mapping[str, Any]) -> ModelCard:
    """The card of an ensemble of models with these ``cards``: their crop specs together, their classes."""
    specs = agreed_crop_specs([(card.crop_specs, card.class_names) for card in cards])
    return ModelCard(architecture={"system": ENSEMBLE, "combine": GEOMETRIC_MEAN,
                                   "members": [card.to_dict() for card in cards]},
                     crop_specs=specs, class_names=tuple(cards[0].class_names), preprocessing=Preprocessing(),
                     provenance=dict(provenance), version=ENSEMBLE_CARD_VERSION)


def ensemble_checkpoint(cards: Sequence[ModelCard], state_dicts: Sequence[Mapping[str, Any]],
                        provenance: Mapping[str, Any]) -> dict[str, Any]:
    """What an ensemble file holds: every member's weights under its prefix, and the ensemble's card."""
    weights = {f"{MEMBERS}.{i}.{key}": value for i, state in enumerate(state_dicts) for key, value in state.items()}
    return {"state_dict": weights, CARD_KEY: ensemble_card(cards, provenance).to_dict()}


def combine_files(paths: Sequence[Path], out: Path) -> ModelCard:
    """Write the ensemble of the checkpoints at ``paths`` to ``out`` (atomically); its card.

    Each member is read once and loaded first (every problem with a file is one line naming it), so a
    bad member leaves nothing written. Members that are ensembles contribute their own members.
    """
    import torch

    from chessrec.fileio import atomic_path
    from chessrec.inference.loader import model_from_checkpoint, read_checkpoint

    paths, out = [Path(p) for p in paths], Path(out)
    if out.suffix != ".ckpt":
        raise UserError(f"{out}: an ensemble is a checkpoint; name it *.ckpt")
    if out.is_dir():
        raise UserError(f"{out}: a folder; name the ensemble's file (*.ckpt)")
    if any(out.exists() and p.exists() and out.resolve() == p.resolve() for p in paths):
        raise UserError(f"{out}: that is one of the models to combine; write the ensemble to another file")
    if any(p.suffix != ".ckpt" for p in paths):
        raise UserError(f"{next(p for p in paths if p.suffix != '.ckpt')}: only torch checkpoints (.ckpt) can be "
                        "combined into an ensemble")
    if len(paths) < 2:
        raise UserError(f"an ensemble needs at least 2 models, got {len(paths)}")
    cards, states, sources = [], [], []
    for path in paths:
        checkpoint, card = read_checkpoint(path)  # the loader's own checks: a missing or bad file is one line naming it
        model_from_checkpoint(checkpoint, card, str(path))  # its weights fit its card
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if is_ensemble(card):
            for i, member in enumerate(member_cards(card, str(path))):
                cards.append(member)
                states.append(member_weights(checkpoint["state_dict"], i))
                sources.append({"file": path.name, "sha256": digest, "member": i})
        else:
            cards.append(card)
            states.append(checkpoint["state_dict"])
            sources.append({"file": path.name, "sha256": digest})
    checkpoint = ensemble_checkpoint(cards, states, {"ensemble_of": sources})  # members disagreeing: refused here
    try:
        with atomic_path(out) as tmp:
            torch.save(checkpoint, tmp)
    except OSError as exc:
        raise UserError(f"{out}: cannot write there ({exc.strerror or exc})") from None
    return ModelCard.from_dict(checkpoint[CARD_KEY], str(out))
