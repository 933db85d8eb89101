"""Training the square classifier with PyTorch Lightning.

Every checkpoint carries a model card (:class:`chessrec.inference.ModelCard`): the architecture,
the crop specs it was trained on, its class order, its preprocessing and its provenance.  So
evaluation and ``chessrec predict`` always cut the crops the model saw and read the file with
:func:`chessrec.inference.load_model`, without Lightning.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import chessrec
from chessrec.config import Params
from chessrec.errors import UserError
from chessrec.features import crops_by_spec, load_features
from chessrec.inference.card import CARD_KEY, ModelCard, Preprocessing
from chessrec.inference.torch_backend import build_network, preprocess
from chessrec.labels import EMPTY
from chessrec.quiet import quiet_library_noise


def square_dataset(features: dict[str, np.ndarray], spec_name: str, empty_keep: float = 1.0,
                   seed: int = 0) -> TensorDataset:
    """Flatten boards into one sample per square: (crop uint8 of spec ``spec_name``, square index, class id).

    ``empty_keep`` < 1 keeps only that share of the empty squares (a fixed, seeded subset): they
    are most of every board and the easiest class, so dropping some spends the training budget
    on telling pieces apart.
    """
    by_spec = crops_by_spec(features)
    if spec_name not in by_spec:
        raise UserError(f"features hold crops {sorted(by_spec)}, not {spec_name!r}: re-run `dvc repro featurize`")
    crops = torch.from_numpy(by_spec[spec_name]).flatten(0, 1)
    labels = torch.from_numpy(features["labels"]).flatten()
    squares = torch.arange(64).repeat(by_spec[spec_name].shape[0])
    if empty_keep < 1.0:
        rng = np.random.default_rng(seed)
        keep = torch.from_numpy((labels.numpy() != EMPTY) | (rng.random(len(labels)) < empty_keep))
        crops, squares, labels = crops[keep], squares[keep], labels[keep]
    return TensorDataset(crops, squares, labels)


def photometric_jitter(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-crop flips, brightness, contrast, colour balance and noise: cheap robustness for real photos."""
    b = x.shape[0]
    shape = (b, 1, 1, 1)
    gain = 1.0 + 0.25 * (torch.rand(shape, generator=generator, device=x.device) * 2 - 1)
    channel = 1.0 + 0.08 * (torch.rand((b, 3, 1, 1), generator=generator, device=x.device) * 2 - 1)
    bias = 0.08 * (torch.rand(shape, generator=generator, device=x.device) * 2 - 1)
    noise = 0.02 * torch.randn(x.shape, generator=generator, device=x.device)
    flip = torch.rand(b, generator=generator, device=x.device) < 0.5  # pieces look alike mirrored
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x * gain * channel + bias + noise


def model_card(params: Params, provenance: dict | None = None) -> ModelCard:
    """The card of a classifier trained with these params (it travels inside the checkpoint)."""
    m = params.model
    return ModelCard(
        architecture={"name": m.name, "width": m.width, "dropout": m.dropout, "head": params.train.head},
        crop_specs=params.features.crop_specs(),
        preprocessing=Preprocessing(square_inputs=params.features.extra_inputs),
        provenance={"params": params.model_dump(), "chessrec": chessrec.__version__, "torch": str(torch.__version__),
                    "lightning": str(pl.__version__), **(provenance or {})},
    )


class SquareClassifierModule(pl.LightningModule):
    """Lightning wrapper: NLL on per-square log-probabilities, accuracy per epoch; saves its model card."""

    def __init__(self, card: dict, lr: float, weight_decay: float):
        super().__init__()
        self.save_hyperparameters()
        self.card = ModelCard.from_dict(card)
        (self.spec_name,) = self.card.crop_specs  # one network reads one crop spec
        self.net = build_network(self.card)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CARD_KEY] = self.card.to_dict()

    def forward(self, crops: torch.Tensor, squares: torch.Tensor) -> torch.Tensor:
        return self.net(crops, squares)

    def _step(self, batch, stage: str) -> torch.Tensor:
        crops, squares, labels = batch
        x = preprocess(crops, self.card.preprocessing)
        if stage == "train":
            x = photometric_jitter(x)
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

    def configure_optimizers(self):
        lr, weight_decay = self.hparams["lr"], self.hparams["weight_decay"]
        optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=self.trainer.estimated_stepping_batches
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


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
        figures = " ".join(f"{key} {float(m[key]):.4f}" for key in ("train/loss", "train/acc", "val/loss", "val/acc")
                           if key in m)
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {figures} "
              f"({time.perf_counter() - self._start:.1f} s)", file=self.stream, flush=True)


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
        precision=t.precision,
        deterministic=True,
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
    train_features, val_features = load_features(features_dir / "train"), load_features(features_dir / "val")
    card = model_card(params, {"boards": {"train": len(train_features["labels"]), "val": len(val_features["labels"])}})
    (spec_name,) = card.crop_specs
    train_set = square_dataset(train_features, spec_name, params.train.empty_keep, params.seed)
    val_set = square_dataset(val_features, spec_name)
    loader_args = dict(batch_size=params.train.batch_size, num_workers=params.train.num_workers)
    module = SquareClassifierModule(card.to_dict(), params.train.lr, params.train.weight_decay)
    trainer = build_trainer(params, logger, callbacks)
    trainer.fit(
        module,
        DataLoader(train_set, shuffle=True, **loader_args),
        DataLoader(val_set, shuffle=False, **loader_args),
    )
    module.card = ModelCard.from_dict({**card.to_dict(), "provenance": {**card.provenance, "validation": {
        key: float(value) for key, value in trainer.callback_metrics.items() if key.startswith("val/")}}})
    model_path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(model_path)
    return trainer
