"""The one config loader: ``params.yaml`` -> typed, validated config objects, before any work.

DVC composes ``conf/`` into ``params.yaml`` with Hydra; stages never use ``@hydra.main``, they
call :func:`load_params`.  Every mistake (unknown key, bad choice, negative learning rate)
becomes one :class:`~chessrec.errors.UserError` line that names the key and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chessrec import registry
from chessrec.errors import UserError
from chessrec.geometry import CROP_SIZE_MAX, CROP_SIZE_MIN

DEFAULT_PARAMS = Path("params.yaml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    source: Literal[registry.DATA_SOURCES] = "synthetic"
    path: Optional[str] = None
    skip_bad: bool = False
    n_games: int = Field(30, ge=1)
    moves_per_game: int = Field(16, ge=1)
    n_random: int = Field(0, ge=0)
    image_size: int = Field(384, ge=128, le=4096)
    workers: int = Field(2, ge=1)


class FeaturesConfig(_Section):
    """How squares are cut; ``piece_size`` set makes the recogniser a two-stage cascade."""

    crop: Literal[registry.CROP_KINDS] = "height_aware"
    size: int = Field(24, ge=CROP_SIZE_MIN, le=CROP_SIZE_MAX)
    piece_size: Optional[int] = Field(None, ge=CROP_SIZE_MIN, le=CROP_SIZE_MAX)
    mirror: bool = True
    #: what a height-aware box bounds on its square (:class:`chessrec.geometry.CropSpec`): ``square``
    #: as every model before 2026-12-06 was cut, ``disc`` the same box however the board is turned
    footprint: Literal[registry.CROP_FOOTPRINTS] = "square"
    #: how much wider a height-aware box is on the outer files, in squares at the a- and h-files
    #: (each side): their pieces lean out under perspective, which boxes standing "image up" missed
    side_factor: float = Field(0.25, ge=0.0, le=2.0)
    extra_inputs: bool = True

    def crop_specs(self) -> dict:
        """The :class:`chessrec.geometry.CropSpec` by name that featurize, training and inference share.

        One spec (``square``) for a single classifier; with ``piece_size``, ``occupancy`` crops of
        ``size`` for the occupancy stage and height-aware ``piece`` crops of ``piece_size`` for the
        piece stage.
        """
        from chessrec.geometry import OCCUPANCY_CROPS, PIECE_CROPS, SQUARE_CROPS, CropSpec

        shared = dict(mirror=self.mirror, footprint=self.footprint, side_factor=self.side_factor)
        if self.piece_size is None:
            return {SQUARE_CROPS: CropSpec(kind=self.crop, size=self.size, **shared)}
        return {OCCUPANCY_CROPS: CropSpec(kind=self.crop, size=self.size, **shared),
                PIECE_CROPS: CropSpec(kind="height_aware", size=self.piece_size, **shared)}


class ModelConfig(_Section):
    name: Literal[registry.ARCHITECTURES] = "tiny_cnn"
    width: int = Field(16, ge=4, le=256)
    #: a cascade's occupancy network width (null: ``width``; a single network ignores it): telling
    #: empty from occupied needs fewer channels than telling a bishop from a pawn
    occupancy_width: Optional[int] = Field(None, ge=4, le=256)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)


class TrainConfig(_Section):
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(0.003, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    head: Literal[registry.HEADS] = "single"
    empty_keep: float = Field(1.0, gt=0.0, le=1.0)
    num_workers: int = Field(0, ge=0)
    #: the largest random shift (fraction of a crop's side), zoom (relative) and rotation (degrees)
    #: of a training crop (:class:`chessrec.jitter.CropJitter`)
    crop_shift: float = Field(0.0, ge=0.0, le=0.5)
    crop_zoom: float = Field(0.0, ge=0.0, lt=1.0)
    crop_rotation_deg: float = Field(0.0, ge=0.0, le=45.0)
    #: start from the weights of a trained classifier (a checkpoint with this run's architecture and
    #: crop specs; an ensemble's member ``init_member``) instead of at random: a model goes on learning
    #: from fresh renders without paying again for what it learnt (:func:`chessrec.training.initial_weights`)
    init_from: Optional[str] = None
    init_member: Optional[int] = Field(None, ge=0)

    @model_validator(mode="after")
    def _a_member_needs_a_file(self) -> "TrainConfig":
        if self.init_member is not None and self.init_from is None:
            raise ValueError(f"train.init_member is {self.init_member} but train.init_from names no checkpoint")
        return self


class TrainerConfig(_Section):
    accelerator: str = "cpu"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = Field(1, ge=1)
    #: Lightning's precisions, or ``bf16-mixed-if-native``: bf16-mixed where the hardware runs bfloat16
    #: natively, 32-true elsewhere (:func:`chessrec.training.resolve_precision`)
    precision: Literal["32-true", "32", "16-mixed", "bf16-mixed", "64-true", "bf16-mixed-if-native"] = "32-true"


DecoderName = Literal[registry.DECODERS]


class EvaluateConfig(_Section):
    decoders: list[DecoderName] = list(registry.DECODERS)
    best_decoder: DecoderName = "constrained"
    topk: int = Field(32, ge=1, le=1024)
    strict: bool = True
    #: nats a strict decode charges per promoted piece (:data:`chessrec.decoding.board.PROMOTION_COST`)
    promotion_cost: float = Field(4.0, ge=0, lt=1000)
    mirror_average: bool = True


class ExportConfig(_Section):
    """The ``export`` stage: ONNX fp32 always, int8 optionally, scored at ``threads`` CPU threads."""

    int8: bool = True
    calibration_boards: int = Field(32, ge=1, le=4096)
    threads: int = Field(1, ge=1, le=256)


class BroadcastConfig(_Section):
    """The ``broadcast`` stage: rendered games followed from video-like frames by the trained model."""

    games: int = Field(20, ge=1, le=1000)
    plies: int = Field(40, ge=1, le=400)
    image_size: int = Field(640, ge=128, le=2048)
    seed: int = 11
    beam_width: int = Field(6, ge=1, le=64)
    workers: int = Field(2, ge=1, le=64)


class FinetuneConfig(_Section):
    """How ``chessrec finetune`` adapts a trained classifier to a set from a few labelled photos."""

    steps: int = Field(240, ge=1, le=100_000)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.002, gt=0.0, le=1.0)
    weight_decay: float = Field(0.0001, ge=0.0)
    freeze: Literal["none", "backbone"] = "none"
    batch_norm: Literal["adapt", "keep"] = "adapt"
    anchor: float = Field(0.0, ge=0.0)
    copies: int = Field(24, ge=1, le=1000)
    jitter: float = Field(0.08, ge=0.0, le=0.5)
    min_scale: float = Field(0.5, gt=0.0, le=1.0)
    shuffle_squares: bool = True
    rehearsal: int = Field(32, ge=0, le=10_000)
    rehearsal_styles: Optional[list[Literal[registry.PIECE_STYLES]]] = None
    seed: int = 0


class AdaptConfig(FinetuneConfig):
    """The ``adapt`` stage: a set with piece colours the model never trained on, adapted from a few
    photos and scored on the rest.

    ``source: synthetic`` renders the set (piece ``style``, ``pieces`` colours, ``board``
    palette): ``train_photos`` renders of the starting position, each from a camera of its own,
    and ``test_photos`` renders of game positions (from those cameras in turn with ``cameras:
    fixed``).  ``source: folder`` reads the team's own labelled photos from ``path`` (``dvc add``
    them): the first ``train_photos`` in name order adapt, the rest are held out.
    """

    source: Literal["synthetic", "folder"] = "synthetic"
    path: Optional[str] = None
    train_photos: int = Field(2, ge=2, le=1000)
    test_photos: int = Field(40, ge=1, le=10_000)
    style: Literal[registry.PIECE_STYLES] = "modern"
    pieces: Literal[registry.HELD_OUT_PIECES] = "red-cream"
    board: Literal[registry.BOARD_PALETTES] = "blue"
    girth: float = Field(1.0, ge=registry.GIRTH_RANGE[0], le=registry.GIRTH_RANGE[1])
    cameras: Literal["fixed", "random"] = "fixed"
    image_size: int = Field(640, ge=128, le=4096)


class EnergyConfig(_Section):
    sample_interval_s: float = Field(0.1, gt=0.0, le=1.0)
    cpu_watts_per_core: float = Field(10.0, gt=0.0)


class ReportConfig(_Section):
    """Stopping-rule thresholds of ``chessrec report``; ``null`` switches a criterion off."""

    min_points_per_kj: Optional[float] = Field(0.5, ge=0.0)
    min_points_per_ms: Optional[float] = Field(0.5, ge=0.0)
    target_board_acc: Optional[float] = Field(0.9, ge=0.0, le=1.0)
    latency_budget_ms: Optional[float] = Field(100.0, gt=0.0)


class Params(_Section):
    seed: int = 7
    profile_name: str = "default"
    data: DataConfig = DataConfig()
    features: FeaturesConfig = FeaturesConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    trainer: TrainerConfig = TrainerConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    export: ExportConfig = ExportConfig()
    broadcast: BroadcastConfig = BroadcastConfig()
    adapt: AdaptConfig = AdaptConfig()
    energy: EnergyConfig = EnergyConfig()
    report: ReportConfig = ReportConfig()


def validate_params(raw: dict, source: str = "params.yaml") -> Params:
    """Typed params from a plain dict; the first problem becomes a one-line UserError."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        raise UserError(_one_line(exc, source)) from None


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (run from the repository root)") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if raw is not None and not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of parameter groups, got {type(raw).__name__}")
    return validate_params(raw, str(path))


def _one_line(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _section_for(err["loc"][:-1])
        valid = ", ".join(parent.model_fields) if parent else ""
        return f"{source}: unknown key '{key}' (valid keys here: {valid})"
    if kind == "value_error":  # a rule across keys (a model_validator): its message names them
        return f"{source}: {err['msg'].removeprefix('Value error, ')}"
    if kind == "literal_error":
        choices = err.get("ctx", {}).get("expected", "")
        return f"{source}: invalid value {err['input']!r} for '{key}' (valid choices: {choices})"
    return f"{source}: invalid value {err.get('input')!r} for '{key}': {err['msg']}"


def _section_for(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Params
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
