"""Training the square classifier with PyTorch Lightning.

Every checkpoint carries a model card (:class:`chessrec.inference.ModelCard`): the architecture,
the crop specs it was trained on, its class order, its preprocessing and its provenance.  So
evaluation and ``chessrec predict`` always cut the crops the model saw and read the file with
:func:`chessrec.inference.load_model`, without Lightning.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.nn import functional as F
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, TensorDataset

import chessrec
from chessrec.config import Params
from chessrec.errors import UserError
from chessrec.features import crops_by_spec, load_features
from chessrec.fileio import file_digest
from chessrec.geometry import OCCUPANCY_CROPS, PIECE_CROPS
from chessrec.inference.card import CARD_KEY, CASCADE, OCCUPANCY_WIDTH, ModelCard, Preprocessing, is_cascade, stage_cards
from chessrec.inference.torch_backend import build_network, preprocess
from chessrec.jitter import CropJitter, NoiseBank, jitter_crops
from chessrec.labels import EMPTY
from chessrec.quiet import quiet_library_noise


class SquareSamples(TensorDataset):
    """Per-square samples that a DataLoader fetches a batch at a time (one indexing per tensor).

    Fetching 256 samples one by one and stacking them took about 12 ms of a 170 ms training step;
    ``__getitems__`` returns the batch already stacked, so the loader's ``collate_fn`` must be
    :func:`as_batch`.  The sampler, and so the order of the samples, is the DataLoader's own.
    """

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        return tuple(tensor[index] for tensor in self.tensors)


def as_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The ``collate_fn`` of a :class:`SquareSamples` loader: its batches come stacked already."""
    return batch


def square_dataset(features: dict[str, np.ndarray], spec_name: str, empty_keep: float = 1.0,
                   seed: int = 0, occupied_only: bool = False) -> SquareSamples:
    """Flatten boards into one sample per square: (crop uint8 of spec ``spec_name``, square index, class id).

    ``empty_keep`` < 1 keeps only that share of the empty squares (a fixed, seeded subset): they
    are most of every board and the easiest class, so dropping some spends the training budget
    on telling pieces apart.  ``occupied_only`` keeps no empty square at all.  Only the kept
    squares' crops are copied out of ``features`` (which may be memory-mapped).
    """
    by_spec = crops_by_spec(features)
    if spec_name not in by_spec:
        raise UserError(f"features hold crops {sorted(by_spec)}, not {spec_name!r}: re-run `dvc repro featurize`")
    boards = by_spec[spec_name]
    crops = boards.reshape(-1, *boards.shape[2:])
    labels = np.asarray(features["labels"]).reshape(-1)
    squares = np.tile(np.arange(64, dtype=np.int64), len(boards))
    keep = np.ones(len(labels), dtype=bool)
    if empty_keep < 1.0:
        rng = np.random.default_rng(seed)
        keep = (labels != EMPTY) | (rng.random(len(labels)) < empty_keep)
    if occupied_only:
        keep &= labels != EMPTY
    return SquareSamples(torch.from_numpy(crops[keep]), torch.from_numpy(squares[keep]),
                         torch.from_numpy(labels[keep].astype(np.int64)))


def model_card(params: Params, provenance: dict | None = None) -> ModelCard:
    """The card of a classifier trained with these params (it travels inside the checkpoint)."""
    m = params.model
    specs = params.features.crop_specs()
    system = {"system": CASCADE, "head": "single"} if len(specs) > 1 else {"head": params.train.head}
    if len(specs) > 1 and m.occupancy_width is not None:
        system[OCCUPANCY_WIDTH] = m.occupancy_width
    return ModelCard(
        architecture={"name": m.name, "width": m.width, "dropout": m.dropout, **system},
        crop_specs=specs,
        preprocessing=Preprocessing(square_inputs=params.features.extra_inputs),
        provenance={"params": params.model_dump(), "chessrec": chessrec.__version__, "torch": str(torch.__version__),
                    "lightning": str(pl.__version__), **(provenance or {})},
    )


def initial_weights(path: Path | str, member: int | None, card: ModelCard) -> tuple[dict[str, torch.Tensor], dict]:
    """The float32 weights a run training ``card`` starts from (``train.init_from``), and its record.

    The checkpoint must hold a network of this run's architecture (dropout aside) reading the same
    crops with the same inputs, or member ``member`` of an ensemble of them: weights for other crops
    would load without complaint and start the run from a model that reads something else.  Every
    mismatch is a one-line error naming the file, raised before any training.
    """
    from chessrec.inference.ensemble import is_ensemble, member_cards, member_weights
    from chessrec.inference.loader import model_from_checkpoint, read_checkpoint

    path = Path(path)
    source = f"train.init_from {path}"
    if not path.is_file():
        raise UserError(f"{source}: no such checkpoint")
    checkpoint, init_card = read_checkpoint(path)
    weights = checkpoint["state_dict"]
    if is_ensemble(init_card):
        cards = member_cards(init_card, source)
        if member is None or member >= len(cards):
            raise UserError(f"{source}: an ensemble of {len(cards)} members; set train.init_member to one of "
                            f"0-{len(cards) - 1}, not {member}")
        init_card, weights = cards[member], member_weights(weights, member)
    elif member is not None:
        raise UserError(f"{source}: one model, not an ensemble; leave train.init_member null, not {member}")
    ours, theirs = card.to_dict(), init_card.to_dict()
    for field in ("architecture", "crop_specs", "class_names", "preprocessing"):
        want, have = ours[field], theirs[field]
        if field == "architecture":  # dropout acts in training only: the weights are the same shape
            want, have = ({k: v for k, v in a.items() if k != "dropout"} for a in (want, have))
        if want != have:
            raise UserError(f"{source}: its {field.replace('_', ' ')} {have} is not this run's {want}")
    model_from_checkpoint({"state_dict": weights}, init_card, source)  # weights that do not fit their card: one line, now
    record = {"file": path.name, "sha256": file_digest(path), "member": member,
              "boards": init_card.provenance.get("boards"), "validation": init_card.provenance.get("validation"),
              "initialised_from": init_card.provenance.get("initialised_from")}
    return {key: value.float() if value.is_floating_point() else value for key, value in weights.items()}, record


class _CardModule(pl.LightningModule):
    """What every chessrec Lightning module shares: its model card (saved in the checkpoint) and optimiser."""

    def __init__(self, card: dict, lr: float, weight_decay: float, crop_jitter: dict | None = None):
        super().__init__()
        self.save_hyperparameters()  # plain types only: inference reads checkpoints weights-only
        self.card = ModelCard.from_dict(card)
        self.crop_jitter = CropJitter(**(crop_jitter or {}))
        self.noise = NoiseBank()  # drawn at the first step, from the seeded global generator

    def training_input(self, crops: torch.Tensor) -> torch.Tensor:
        """uint8 training crops -> network input with their geometry and colours jittered."""
        return jitter_crops(crops, self.crop_jitter, self.noise, self.card.preprocessing)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CARD_KEY] = self.card.to_dict()

    def configure_optimizers(self):
        lr, weight_decay = self.hparams["lr"], self.hparams["weight_decay"]
        optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=self.trainer.estimated_stepping_batches
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class SquareClassifierModule(_CardModule):
    """Lightning wrapper: NLL on per-square log-probabilities, accuracy per epoch; saves its model card."""

    def __init__(self, card: dict, lr: float, weight_decay: float, crop_jitter: dict | None = None):
        super().__init__(card, lr, weight_decay, crop_jitter)
        (self.spec_name,) = self.card.crop_specs  # one network reads one crop spec
        self.net = build_network(self.card)

    def forward(self, crops: torch.Tensor, squares: torch.Tensor) -> torch.Tensor:
        return self.net(crops, squares)

    def _step(self, batch, stage: str) -> torch.Tensor:
        crops, squares, labels = batch
        x = self.training_input(crops) if stage == "train" else preprocess(crops, self.card.preprocessing)
        log_probs = self(x, squares)
        loss = F.nll_loss(log_probs, labels)
        acc = (log_probs.argmax(dim=1) == labels).float().mean()
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")


class CascadeModule(_CardModule):
    """Both stages of a two-stage recogniser, trained together in one run and saved in one checkpoint.

    Each training step takes a batch of occupancy samples (every kept square, small crops, empty or
    occupied) and a batch of piece samples (occupied squares only, tall crops, 12 classes) and
    minimises the sum of both losses.  Validation scores the cascade as inference runs it,
    p(piece) = p(occupied) * p(piece | occupied), so ``val/acc`` means what it means for a single
    network: the share of all squares read right.
    """

    def __init__(self, card: dict, lr: float, weight_decay: float, crop_jitter: dict | None = None):
        super().__init__(card, lr, weight_decay, crop_jitter)
        stages = stage_cards(self.card)
        self.occupancy = build_network(stages[OCCUPANCY_CROPS])
        self.piece = build_network(stages[PIECE_CROPS])

    def forward(self, occupancy_x: torch.Tensor, piece_x: torch.Tensor, squares: torch.Tensor) -> torch.Tensor:
        """13-class log-probabilities of the cascade (pieces, then empty)."""
        occupancy = self.occupancy(occupancy_x, squares)  # [empty, occupied]
        return torch.cat([self.piece(piece_x, squares) + occupancy[:, 1:2], occupancy[:, :1]], dim=1)

    def training_step(self, batch, batch_idx):
        losses = {}
        for stage, network in (("occupancy", self.occupancy), ("piece", self.piece)):
            crops, squares, labels = batch[stage]
            log_probs = network(self.training_input(crops), squares)
            losses[stage] = F.nll_loss(log_probs, labels)
            acc = (log_probs.argmax(dim=1) == labels).float().mean()
            self.log(f"train/{stage}_acc", acc, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True,
                     batch_size=len(labels))
        loss = losses["occupancy"] + losses["piece"]
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=len(batch["occupancy"][2]))
        return loss

    def scoring_log_probs(self, occupancy_x: torch.Tensor, piece_x: torch.Tensor, squares: torch.Tensor,
                          labels: torch.Tensor) -> torch.Tensor:
        """The cascade's 13-class log-probabilities where they decide the loss and the argmax.

        The piece network runs only on squares that hold a piece or are read as occupied.  On the
        others empty outscores every piece (p(piece) <= p(occupied) < p(empty)), so their piece
        terms are -inf: the same loss and accuracy as :meth:`forward`, for about 40% of its cost.
        """
        occupancy = self.occupancy(occupancy_x, squares)  # [empty, occupied]
        needed = (labels != EMPTY) | (occupancy[:, 1] >= occupancy[:, 0])
        pieces = occupancy.new_full((len(labels), len(self.card.class_names) - 1), float("-inf"))
        if needed.any():
            pieces[needed] = (self.piece(piece_x[needed], squares[needed]) + occupancy[needed, 1:2]).to(pieces.dtype)
        return torch.cat([pieces, occupancy[:, :1]], dim=1)

    def validation_step(self, batch, batch_idx):
        occupancy_crops, piece_crops, squares, labels = batch
        p = self.card.preprocessing
        log_probs = self.scoring_log_probs(preprocess(occupancy_crops, p), preprocess(piece_crops, p), squares, labels)
        self.log("val/loss", F.nll_loss(log_probs, labels), on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("val/acc", (log_probs.argmax(dim=1) == labels).float().mean(), on_step=False, on_epoch=True,
                 prog_bar=True, sync_dist=True)


def cascade_datasets(features: dict[str, np.ndarray], empty_keep: float, seed: int) -> dict[str, SquareSamples]:
    """The two training sets of a cascade: occupancy (kept squares, 0 = empty / 1 = occupied) and
    piece (occupied squares only, the 12 piece classes)."""
    crops, squares, labels = square_dataset(features, OCCUPANCY_CROPS, empty_keep, seed).tensors
    return {"occupancy": SquareSamples(crops, squares, (labels != EMPTY).long()),
            "piece": square_dataset(features, PIECE_CROPS, occupied_only=True)}


def cascade_validation_set(features: dict[str, np.ndarray]) -> SquareSamples:
    """Every validation square with both crops and its 13-class label."""
    occupancy, piece = (square_dataset(features, name).tensors for name in (OCCUPANCY_CROPS, PIECE_CROPS))
    return SquareSamples(occupancy[0], piece[0], occupancy[1], occupancy[2])


class EpochLines(pl.Callback):
    """One line per epoch (epoch, losses, accuracies, seconds) where no progress bar is drawn.

    A progress bar redraws one terminal line; in a CI log or a file it prints nothing for the
    whole of training, so there the trainer runs without it and this says what happened.
    """

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        figures = " ".join(f"{key} {float(m[key]):.4f}" for key in (
            "train/loss", "train/acc", "train/occupancy_acc", "train/piece_acc", "val/loss", "val/acc") if key in m)
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {figures} "
              f"({time.perf_counter() - self._start:.1f} s)", file=self.stream, flush=True)


def on_cuda(accelerator: str) -> bool:
    """Whether Lightning's ``accelerator`` setting trains on an NVIDIA GPU."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def determinism(accelerator: str) -> bool | str:
    """Lightning's ``deterministic`` for ``accelerator``: strict on a CPU, ``"warn"`` on a GPU.

    CUDA has no deterministic backward for adaptive average pooling (every network here ends in
    one), and strict determinism makes it raise; ``"warn"`` keeps every deterministic kernel and
    names the ones that are not.  A GPU run is therefore close to, not bit-identical with, its rerun.
    """
    return "warn" if on_cuda(accelerator) else True


#: ``trainer.precision`` that trains in bfloat16 only where the hardware runs it natively
BF16_IF_NATIVE = "bf16-mixed-if-native"


def native_bf16(accelerator: str) -> bool:
    """Whether training on ``accelerator`` would run bfloat16 natively.

    On a CPU that means AVX-512 BF16 or AMX: measured with ``benchmarks/bench_training.py`` and
    oneDNN held to a lesser instruction set (``ONEDNN_MAX_CPU_ISA``), a bf16 step took 1.4x a float32
    one with plain AVX-512 and 9x with AVX2, where these cores (``avx512_bf16``) take 0.7x.
    """
    if on_cuda(accelerator):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if accelerator not in ("cpu", "auto"):
        return False
    cpu = torch.cpu
    return any(getattr(cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_precision(precision: str, accelerator: str) -> str:
    """The Lightning precision to train with: ``bf16-mixed-if-native`` becomes ``bf16-mixed`` where
    bfloat16 is native and ``32-true`` elsewhere (emulated bfloat16 is slower than float32, not
    faster); any other value is Lightning's own."""
    if precision != BF16_IF_NATIVE:
        return precision
    return "bf16-mixed" if native_bf16(accelerator) else "32-true"


def build_trainer(params: Params, logger, callbacks: list) -> pl.Trainer:
    t = params.trainer
    quiet_library_noise()
    interactive = sys.stderr.isatty()
    return pl.Trainer(
        max_epochs=params.train.epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        precision=resolve_precision(t.precision, t.accelerator),
        deterministic=determinism(t.accelerator),
        logger=logger,
        callbacks=[*callbacks, *([] if interactive else [EpochLines()])],
        enable_progress_bar=interactive,
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=10,
    )


def fit(params: Params, features_dir: Path, model_path: Path, logger, callbacks: list) -> pl.Trainer:
    """Train on the ``train`` split, validate on ``val``, write the checkpoint to ``model_path``."""
    pl.seed_everything(params.seed, workers=True)
    train_features, val_features = (load_features(features_dir / split, mmap=True) for split in ("train", "val"))
    trainer = build_trainer(params, logger, callbacks)
    card = model_card(params, {"boards": {"train": len(train_features["labels"]), "val": len(val_features["labels"])},
                               "precision": trainer.precision})
    if params.train.init_from is not None:  # checked before any training, and recorded in the card
        start, started_from = initial_weights(params.train.init_from, params.train.init_member, card)
        card = ModelCard.from_dict({**card.to_dict(), "provenance": {**card.provenance, "initialised_from": started_from}})
    crop_jitter = asdict(CropJitter.of(params.train))
    loader_args = dict(batch_size=params.train.batch_size, num_workers=params.train.num_workers, collate_fn=as_batch)
    if is_cascade(card):
        train_loader = CombinedLoader({name: DataLoader(dataset, shuffle=True, **loader_args) for name, dataset in
                                       cascade_datasets(train_features, params.train.empty_keep, params.seed).items()},
                                      mode="max_size_cycle")
        val_set = cascade_validation_set(val_features)
        module = CascadeModule(card.to_dict(), params.train.lr, params.train.weight_decay, crop_jitter)
    else:
        (spec_name,) = card.crop_specs
        train_loader = DataLoader(square_dataset(train_features, spec_name, params.train.empty_keep, params.seed),
                                  shuffle=True, **loader_args)
        val_set = square_dataset(val_features, spec_name)
        module = SquareClassifierModule(card.to_dict(), params.train.lr, params.train.weight_decay, crop_jitter)
    if params.train.init_from is not None:  # initial_weights has checked that they fit these networks
        module.load_state_dict(start)
    trainer.fit(module, train_loader, DataLoader(val_set, shuffle=False, **loader_args))
    module.card = ModelCard.from_dict({**card.to_dict(), "provenance": {**card.provenance, "validation": {
        key: float(value) for key, value in trainer.callback_metrics.items() if key.startswith("val/")}}})
    model_path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(model_path, weights_only=True)  # a model to use, not a run to resume: no optimizer state
    return trainer
