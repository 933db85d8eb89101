"""Continue training a chessrec classifier on a few photos of one set, with Lightning.

The base checkpoint's own architecture, crop specs and preprocessing are kept (its model card is
copied), every layer keeps learning unless ``freeze`` says otherwise, and the result is an
ordinary checkpoint that ``chessrec predict``, ``broadcast`` and the Python API load like any
other.  Its card's provenance records the base model (file, sha256, its own provenance), the
photos (file, sha256, FEN, corners), the options, the time and the energy.
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader

from chessrec.adapt.augment import augmented_crops
from chessrec.adapt.photos import PreparedPhoto, SetPhoto, check_labels_match, prepare_photo
from chessrec.config import FinetuneConfig
from chessrec.errors import UserError
from chessrec.features import CROPS_PREFIX
from chessrec.fileio import file_digest
from chessrec.labels import CLASS_NAMES, CORNER_NAMES
from chessrec.training import SquareSamples, as_batch

#: fewer photos than this cannot show a set's pieces from more than one side
MIN_PHOTOS = 2


@dataclass(frozen=True)
class Adapted:
    """What :func:`finetune` did: the checkpoint written, its provenance, seconds and joules."""

    path: Path
    provenance: dict
    fit_s: float
    prepare_s: float
    energy_j: float
    energy_method: str
    unseen_classes: tuple[str, ...]


def prepared_photos(photos: list[SetPhoto], base_model, check_labels: bool = True,
                    log: Callable[[str], None] = print) -> list[PreparedPhoto]:
    """Read and place every photo, and check its labels against the base model, before any training."""
    if len(photos) < MIN_PHOTOS:
        raise UserError(f"adapting needs at least {MIN_PHOTOS} labelled photos of the set, got {len(photos)}"
                        + (f" ({photos[0].path})" if photos else ""))
    seen: dict[str, Path] = {}
    for photo in photos:
        digest = file_digest(photo.path)
        if digest in seen:
            raise UserError(f"{photo.path}: the same photo as {seen[digest]}: give each photo once")
        seen[digest] = photo.path
    from chessrec.inference.model import board_probabilities

    prepared = []
    for photo in photos:
        ready = prepare_photo(photo)
        if check_labels:
            check_labels_match(photo, board_probabilities(base_model, ready.pixels, ready.corners))
        prepared.append(ready)
        log(f"finetune: {photo.path.name}: board at {np.round(ready.corners * ready.factor).astype(int).tolist()}")
    return prepared


def training_features(prepared: list[PreparedPhoto], specs: dict, options: FinetuneConfig,
                      render_size: int = 640) -> dict[str, np.ndarray]:
    """Featurize-style arrays ({crops_<spec>: (N, 64, 3, H, W), labels: (N, 64)}): the augmented copies
    of the set's photos, then ``options.rehearsal`` fresh renders of random sets and positions."""
    rng = np.random.default_rng(options.seed)
    per_spec: dict[str, list[np.ndarray]] = {name: [] for name in specs}
    labels = []
    for ready in prepared:
        copies = augmented_crops(ready.pixels, ready.corners, specs, options.copies, rng, options.jitter,
                                 options.min_scale)
        for name, crops in copies.items():
            per_spec[name].append(crops)
        labels.append(np.repeat(ready.photo.labels[None], options.copies, axis=0))
    if options.rehearsal:
        rehearsal = rehearsal_features(specs, options.rehearsal, render_size, options.seed, options.rehearsal_styles)
        for name in specs:
            per_spec[name].append(rehearsal[CROPS_PREFIX + name])
        labels.append(rehearsal["labels"])
    return {**{CROPS_PREFIX + name: np.concatenate(c) for name, c in per_spec.items()},
            "labels": np.concatenate(labels).astype(np.int64)}


def rehearsal_features(specs: dict, boards: int, image_size: int, seed: int,
                       styles: list[str] | None = None) -> dict[str, np.ndarray]:
    """Crops of ``boards`` fresh renders (random sets, cameras and game positions; piece styles in
    turn from ``styles`` when given, else drawn as in training).

    Trained on beside the set's photos, they keep the network reading what those few photos do
    not show (other positions, other views) instead of forgetting it: renders are cheap, and a
    rendered board costs a fraction of a second here.
    """
    from chessrec.geometry import square_crops
    from chessrec.synth.positions import game_positions
    from chessrec.synth.render import ChessSet, render_board

    rng = np.random.default_rng([seed, 1])
    positions = [p for _ in range((boards + 7) // 8) for p in game_positions(rng, 8)][:boards]
    crops: dict[str, list[np.ndarray]] = {name: [] for name in specs}
    for index, labels in enumerate(positions):
        chess_set = ChessSet(style=styles[index % len(styles)]) if styles else ChessSet()
        render = render_board(labels, int(rng.integers(2**31)) + index, image_size, with_ids=False, chess_set=chess_set)
        for name, spec in specs.items():
            crops[name].append(square_crops(render.image, render.corners, spec))
    return {**{CROPS_PREFIX + name: np.stack(c) for name, c in crops.items()}, "labels": np.stack(positions)}


def anchor_to_base(module, weight: float) -> None:
    """Add ``weight`` x the squared distance of the weights from the base model's to every training
    loss (L2-SP): a few photos pull the network towards them, the anchor keeps what it learnt
    from thousands of renders that those photos do not contradict."""
    base = {name: p.detach().clone() for name, p in module.named_parameters()}
    step = module.training_step

    def anchored_step(batch, batch_idx):
        loss = step(batch, batch_idx)
        drift = sum(((p - base[name]) ** 2).sum() for name, p in module.named_parameters() if p.requires_grad)
        module.log("train/drift", drift.detach() if torch.is_tensor(drift) else float(drift), on_step=False,
                   on_epoch=True)
        return loss + weight * drift

    module.training_step = anchored_step


class KeepBatchNormStatistics(pl.Callback):
    """Batch normalisation keeps the base model's statistics: a few photos' batches would
    replace what thousands of renders measured with what one position looks like."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        for layer in pl_module.modules():
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                layer.eval()


def with_random_squares(dataset, rng: np.random.Generator):
    """The same samples, each told it stands on a random square of its own colour.

    The classifier also reads the square's colour, rank and file.  A few photos tie pieces to
    squares (in the starting position a piece's rank and file name it), and fine-tuning on them
    learns that shortcut instead of the pieces' looks; a random square of the same colour keeps
    the colour cue (what the background looks like) and breaks the tie.
    """
    from chessrec.models import square_inputs

    crops, squares, labels = dataset.tensors
    light = square_inputs(torch.arange(64))[:, 0].numpy()
    colour = light[squares.numpy()].astype(int)
    same_colour = [np.flatnonzero(light == c) for c in (0, 1)]
    random = np.array([rng.choice(same_colour[c]) for c in colour], dtype=np.int64)
    return SquareSamples(crops, torch.from_numpy(random), labels)


def finetune(base: Path, photos: list[SetPhoto], out: Path, options: FinetuneConfig = FinetuneConfig(),
             check_labels: bool = True, energy: dict | None = None, logger=None,
             log: Callable[[str], None] = print) -> Adapted:
    """Adapt the model in ``base`` to the set in ``photos``; write the adapted checkpoint to ``out``.

    Everything the user can get wrong (model file, photos, labels, corners) is checked before
    training; ``out`` is written atomically, so a failure leaves no file behind.
    """
    import chessrec
    from chessrec.energy import EnergyMeter
    from chessrec.energy.callback import methods_label
    from chessrec.fileio import atomic_path
    from chessrec.inference.card import CARD_KEY
    from chessrec.inference.ensemble import ensemble_checkpoint, is_ensemble, member_cards, member_weights
    from chessrec.inference.loader import model_from_checkpoint, read_checkpoint
    from chessrec.quiet import quiet_library_noise

    base, out = Path(base), Path(out)
    if out.suffix != ".ckpt":
        raise UserError(f"{out}: the adapted model is a checkpoint; name it *.ckpt")
    if base.suffix != ".ckpt":
        raise UserError(f"{base}: adapting needs the torch checkpoint (.ckpt) the ONNX file was exported from")
    if out.exists() and base.exists() and out.resolve() == base.resolve():
        raise UserError(f"{out}: that is the base model; write the adapted model to another file")
    if out.is_dir():
        raise UserError(f"{out}: a folder; name the adapted model's file (*.ckpt)")
    try:  # a folder the model cannot be written to fails now, not after training
        out.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out.parent).close()
    except OSError as exc:
        raise UserError(f"{out}: cannot write there ({exc.strerror or exc})") from None
    t0 = time.perf_counter()
    checkpoint, card = read_checkpoint(base)  # every problem with the file: one line naming it
    base_model = model_from_checkpoint(checkpoint, card, str(base))
    prepared = prepared_photos(photos, base_model, check_labels, log)
    ensemble = is_ensemble(card)
    if ensemble:  # each member adapts on the same photos
        members = [(member, member_weights(checkpoint["state_dict"], i))
                   for i, member in enumerate(member_cards(card, str(base)))]
    else:
        members = [(card, checkpoint["state_dict"])]
    inputs = [(tuple(member.crop_specs.items()), render_size_of(member)) for member, _ in members]
    features_by_input = {key: training_features(prepared, dict(key[0]), options, key[1])  # shared by equal inputs
                         for key in dict.fromkeys(inputs)}
    features = [features_by_input[key] for key in inputs]
    seen = set(np.unique(features[0]["labels"]).tolist())
    unseen = tuple(CLASS_NAMES[c] for c in range(len(CLASS_NAMES)) if c not in seen)
    if unseen:
        log(f"finetune: no photo shows {', '.join(unseen)}: those classes keep what the base model knew")
    prepare_s = time.perf_counter() - t0

    quiet_library_noise()
    energy = energy or {}
    meter = EnergyMeter(gpu_indices=[], sample_interval_s=energy.get("sample_interval_s", 0.1),
                        cpu_watts_per_core=energy.get("cpu_watts_per_core", 10.0))
    with meter:
        meter.begin_window("finetune")
        adapted = [adapted_weights(member, weights, member_features, options,
                                   f"{base} (member {i})" if ensemble else str(base), logger)
                   for i, ((member, weights), member_features) in enumerate(zip(members, features))]
        measured = meter.end_window("finetune")
    fit_s = measured.wall_s
    provenance = {
        # the base's training params (render size, crops); an ensemble's are in its members' cards
        "params": card.provenance.get("params", {}),
        "adapted_from": {"file": base.name, "sha256": file_digest(base), "provenance": card.provenance},
        "adapted_on": [{"file": r.photo.path.name, "sha256": file_digest(r.photo.path), "fen": r.photo.fen,
                        "corners": dict(zip(CORNER_NAMES, (r.corners * r.factor).round(1).tolist())),
                        "corners_located": r.photo.corners is None} for r in prepared],
        "finetune": {**options.model_dump(), "seconds": round(fit_s, 2),
                     "energy_j": round(measured.total_energy_j, 1), "energy_method": methods_label(measured)},
        "chessrec": chessrec.__version__, "torch": str(torch.__version__), "lightning": str(pl.__version__),
    }
    if ensemble:
        written = ensemble_checkpoint([member for member, _ in members], adapted, provenance)
    else:
        written = {"state_dict": adapted[0], CARD_KEY: {**card.to_dict(), "provenance": provenance}}
    with atomic_path(out) as tmp:
        torch.save(written, tmp)
    return Adapted(out, provenance, fit_s, prepare_s, measured.total_energy_j, methods_label(measured), unseen)


def render_size_of(card) -> int:
    """The render size the model was trained on (its rehearsal renders match it)."""
    return int(card.provenance.get("params", {}).get("data", {}).get("image_size", 640))


def adapted_weights(card, state_dict: dict, features: dict[str, np.ndarray], options: FinetuneConfig, source: str,
                    logger=None) -> dict:
    """The ``state_dict`` of the network (or cascade) of ``card`` and ``state_dict`` after ``options.steps`` of
    training on ``features``."""
    from chessrec.inference.card import is_cascade
    from chessrec.training import CascadeModule, EpochLines, SquareClassifierModule, cascade_datasets, square_dataset

    pl.seed_everything(options.seed, workers=True, verbose=False)
    loader_args = dict(batch_size=options.batch_size, shuffle=True, num_workers=0, collate_fn=as_batch)
    if is_cascade(card):
        module = CascadeModule(card.to_dict(), options.lr, options.weight_decay)
        datasets = cascade_datasets(features, 1.0, options.seed)
    else:
        module = SquareClassifierModule(card.to_dict(), options.lr, options.weight_decay)
        (spec,) = card.crop_specs
        datasets = {spec: square_dataset(features, spec)}
    if options.shuffle_squares:
        rng = np.random.default_rng(options.seed)
        datasets = {name: with_random_squares(dataset, rng) for name, dataset in datasets.items()}
    loaders = {name: DataLoader(dataset, **loader_args) for name, dataset in datasets.items()}
    loader = CombinedLoader(loaders, mode="max_size_cycle") if is_cascade(card) else next(iter(loaders.values()))
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise UserError(f"{source}: weights do not fit the architecture its card names ({str(exc).splitlines()[0]})") \
            from None
    if options.freeze == "backbone":  # the heads learn; the backbone keeps its weights and its statistics
        for name, parameter in module.named_parameters():
            parameter.requires_grad_(".head." in name)
    if options.anchor > 0:
        anchor_to_base(module, options.anchor)
    keep_statistics = options.batch_norm == "keep" or options.freeze == "backbone"
    callbacks = [EpochLines()] + ([KeepBatchNormStatistics()] if keep_statistics else [])
    batches_per_epoch = max(math.ceil(len(d) / options.batch_size) for d in datasets.values())
    trainer = pl.Trainer(max_steps=options.steps, max_epochs=math.ceil(options.steps / batches_per_epoch),
                         accelerator="cpu", devices=1, deterministic=True,
                         logger=logger if logger is not None else False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=False, log_every_n_steps=5,
                         callbacks=callbacks)
    with warnings.catch_warnings():  # no held-out photos while adapting: the module's validation step idles
        warnings.filterwarnings("ignore", message=".*validation_step.* but have no `val_dataloader`")
        trainer.fit(module, loader)
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def score_models(models: dict, photos: list[SetPhoto], decoders=("constrained",), strict: bool = False,
                 mirror_average: bool = True) -> dict:
    """{model name: {decoder: squares, boards, errors per board}} of each model (file or loaded) on
    ``photos``, each its own game; every photo is read once (as cut and mirrored, averaged, unless
    ``mirror_average`` is off, as :class:`chessrec.recognize.Recognizer` reads it).  Non-strict by
    default, since real photos need not show legal positions."""
    from chessrec.decoding import DecodeOptions
    from chessrec.inference.loader import load_model
    from chessrec.inference.model import board_probabilities
    from chessrec.inference.views import with_views
    from chessrec.metrics import evaluate_predictions

    loaded = {name: with_views(load_model(model), mirror_average) for name, model in models.items()}
    probs: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for photo in photos:
        ready = prepare_photo(photo)
        for name, model in loaded.items():
            probs[name].append(board_probabilities(model, ready.pixels, ready.corners))
    labels = np.stack([photo.labels for photo in photos])
    games = np.array([str(i) for i in range(len(photos))])
    keys = ("square_acc", "square_acc_low", "square_acc_high", "board_acc", "board_acc_low", "board_acc_high",
            "errors_per_board")
    scores = {}
    for name in models:
        scored = evaluate_predictions(np.stack(probs[name]), labels, games, np.zeros(len(photos), int), list(decoders),
                                      DecodeOptions(strict=strict))
        scores[name] = {d: {k: scored.metrics[d][k] for k in keys} | {"boards": len(photos)} for d in decoders}
    return scores


def score_photos(model, photos: list[SetPhoto], decoders=("constrained",), strict: bool = False,
                 mirror_average: bool = True) -> dict:
    """Per decoder: squares, boards and errors per board of one ``model`` on ``photos`` (see :func:`score_models`)."""
    return score_models({"model": model}, photos, decoders, strict, mirror_average)["model"]
