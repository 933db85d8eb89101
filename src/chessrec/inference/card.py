"""The model card: everything inference needs to use a saved model, stored inside the model file.

A card is plain data (JSON-serialisable): which architecture to rebuild, which crops to cut
(:class:`chessrec.geometry.CropSpec` by name), the order of the model's output classes, how
pixels become network input, and where the model came from.  Any backend (torch today, ONNX
Runtime next) reads the same card, so the preprocessing can never drift between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from chessrec.errors import UserError
from chessrec.geometry import OCCUPANCY_CROPS, PIECE_CROPS, SQUARE_CROPS, CropSpec
from chessrec.labels import CLASS_NAMES, EMPTY

__all__ = ["CARD_KEY", "CARD_VERSION", "CASCADE", "NETWORK_CARD_VERSION", "OCCUPANCY_WIDTH", "SQUARE_CROPS",
           "ModelCard", "Preprocessing", "stage_cards"]

#: newest card layout this code reads; a loader refuses a card newer than it understands
#: (2: a cascade's architecture may name its occupancy network's own width; 3: an ensemble's
#: architecture lists its members' cards)
CARD_VERSION = 3
#: the layout single networks and cascades are written in: a card is written at the oldest version
#: that describes it, so older chessrec releases keep reading them (and refuse an ensemble in one line)
NETWORK_CARD_VERSION = 2
#: where the card is stored inside a checkpoint (Lightning's, or an ensemble's)
CARD_KEY = "chessrec_card"
#: ``architecture[OCCUPANCY_WIDTH]`` of a cascade: its occupancy network's width, when it differs
#: from the piece network's ``width`` (telling empty from occupied needs far fewer channels)
OCCUPANCY_WIDTH = "occupancy_width"
#: ``architecture["system"]`` of a two-stage recogniser (an occupancy and a piece network)
CASCADE = "cascade"
#: output classes of a cascade's occupancy network
OCCUPANCY_CLASSES = ("empty", "occupied")


@dataclass(frozen=True)
class Preprocessing:
    """uint8 RGB crops (N, 3, H, W) -> network input: ``x / divisor - mean``, float32.

    ``square_inputs``: the network also takes each crop's square index (a1 = 0) for its colour,
    rank and file features.
    """

    divisor: float = 255.0
    mean: float = 0.5
    layout: str = "NCHW"
    channels: str = "RGB"
    square_inputs: bool = True


@dataclass(frozen=True)
class ModelCard:
    """What a saved square model is and how to feed it.

    ``architecture``: the keyword arguments that rebuild the network (``name``, ``width``, ...);
    ``crop_specs``: the crops it reads, by name; ``class_names``: its output order;
    ``provenance``: how it was made (params, data sizes, versions, validation figures).
    """

    architecture: Mapping[str, Any]
    crop_specs: Mapping[str, CropSpec]
    class_names: tuple[str, ...] = CLASS_NAMES
    preprocessing: Preprocessing = Preprocessing()
    provenance: Mapping[str, Any] = field(default_factory=dict)
    version: int = NETWORK_CARD_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "architecture": dict(self.architecture),
            "crop_specs": {name: asdict(spec) for name, spec in self.crop_specs.items()},
            "class_names": list(self.class_names),
            "preprocessing": asdict(self.preprocessing),
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "model card") -> "ModelCard":
        """A card from its stored form; any missing or malformed field is a one-line UserError."""
        try:
            version = int(raw.get("version", 0))
            if version > CARD_VERSION:
                raise UserError(f"{source}: model card version {version} is newer than this chessrec "
                                f"understands ({CARD_VERSION}); upgrade chessrec")
            specs = {str(name): CropSpec(**dict(spec)) for name, spec in dict(raw["crop_specs"]).items()}
            if not specs:
                raise UserError(f"{source}: model card names no crop spec")
            return cls(
                architecture=dict(raw["architecture"]),
                crop_specs=specs,
                class_names=tuple(str(c) for c in raw["class_names"]),
                preprocessing=Preprocessing(**dict(raw.get("preprocessing", {}))),
                provenance=dict(raw.get("provenance", {})),
                version=version,
            )
        except UserError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{source}: malformed model card ({type(exc).__name__}: {exc})") from None


def is_cascade(card: ModelCard) -> bool:
    return card.architecture.get("system") == CASCADE


def stage_cards(card: ModelCard) -> dict[str, ModelCard]:
    """A cascade's card split into its stages' cards (``occupancy``, ``piece``), each naming its own
    crops and classes; a single network's card is its own one stage (``net``).

    The keys are also the prefixes of each stage's weights in the checkpoint's ``state_dict``.
    """
    if not is_cascade(card):
        return {"net": card}
    missing = {OCCUPANCY_CROPS, PIECE_CROPS} - set(card.crop_specs)
    if missing:
        raise UserError(f"cascade model card lacks crop spec(s) {sorted(missing)}")
    common = {"preprocessing": card.preprocessing, "provenance": card.provenance, "version": card.version}
    architecture = dict(card.architecture)
    occupancy_width = architecture.pop(OCCUPANCY_WIDTH, None)  # absent: both networks are ``width`` wide
    occupancy_architecture = architecture if occupancy_width is None else {**architecture, "width": occupancy_width}
    return {
        OCCUPANCY_CROPS: ModelCard(crop_specs={OCCUPANCY_CROPS: card.crop_specs[OCCUPANCY_CROPS]},
                                   class_names=OCCUPANCY_CLASSES, architecture=occupancy_architecture, **common),
        PIECE_CROPS: ModelCard(crop_specs={PIECE_CROPS: card.crop_specs[PIECE_CROPS]},
                               class_names=CLASS_NAMES[:EMPTY], architecture=architecture, **common),
    }
