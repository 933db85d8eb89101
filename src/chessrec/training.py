"""Training the square classifier with PyTorch Lightning, and loading it back for inference.

The checkpoint carries the model and crop settings it was trained with, so evaluation and
``chessrec predict`` always cut the same crops the model saw (see :mod:`chessrec.geometry`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from chessrec.config import Params
from chessrec.errors import UserError
from chessrec.features import load_features
from chessrec.geometry import CropSpec
from chessrec.labels import EMPTY
from chessrec.models import SquareClassifier


def square_dataset(features: dict[str, np.ndarray], empty_keep: float = 1.0, seed: int = 0) -> TensorDataset:
    """Flatten boards into one sample per square: (crop uint8, square index, class id).

    ``empty_keep`` < 1 keeps only that share of the empty squares (a fixed, seeded subset): they
    are most of every board and the easiest class, so dropping some spends the training budget
    on telling pieces apart.
    """
    crops = torch.from_numpy(features["crops"]).flatten(0, 1)
    labels = torch.from_numpy(features["labels"]).flatten()
    squares = torch.arange(64).repeat(features["crops"].shape[0])
    if empty_keep < 1.0:
        rng = np.random.default_rng(seed)
        keep = torch.from_numpy((labels.numpy() != EMPTY) | (rng.random(len(labels)) < empty_keep))
        crops, squares, labels = crops[keep], squares[keep], labels[keep]
    return TensorDataset(crops, squares, labels)


def to_input(crops_u8: torch.Tensor) -> torch.Tensor:
    return crops_u8.float().div_(255.0).sub_(0.5)


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


class SquareClassifierModule(pl.LightningModule):
    """Lightning wrapper: NLL on per-square log-probabilities, accuracy per epoch."""

    def __init__(self, model: dict, features: dict, train: dict, crop_spec: dict):
        super().__init__()
        self.save_hyperparameters()
        self.net = SquareClassifier(
            model["name"], model["width"], model["dropout"], train["head"], features["extra_inputs"]
        )

    def forward(self, crops: torch.Tensor, squares: torch.Tensor) -> torch.Tensor:
        return self.net(crops, squares)

    def _step(self, batch, stage: str) -> torch.Tensor:
        crops, squares, labels = batch
        x = to_input(crops)
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
        cfg = self.hparams["train"]
        optimizer = torch.optim.AdamW(self.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg["lr"], total_steps=self.trainer.estimated_stepping_batches
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def build_trainer(params: Params, logger, callbacks: list) -> pl.Trainer:
    t = params.trainer
    return pl.Trainer(
        max_epochs=params.train.epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        precision=t.precision,
        deterministic=True,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=10,
    )


def fit(params: Params, features_dir: Path, model_path: Path, logger, callbacks: list) -> pl.Trainer:
    """Train on the ``train`` split, validate on ``val``, write the checkpoint to ``model_path``."""
    pl.seed_everything(params.seed, workers=True)
    train_set = square_dataset(load_features(features_dir / "train"), params.train.empty_keep, params.seed)
    val_set = square_dataset(load_features(features_dir / "val"))
    loader_args = dict(batch_size=params.train.batch_size, num_workers=params.train.num_workers)
    module = SquareClassifierModule(
        params.model.model_dump(), params.features.model_dump(), params.train.model_dump(),
        asdict(params.features.crop_spec()),
    )
    trainer = build_trainer(params, logger, callbacks)
    trainer.fit(
        module,
        DataLoader(train_set, shuffle=True, **loader_args),
        DataLoader(val_set, shuffle=False, **loader_args),
    )
    model_path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(model_path)
    return trainer


@dataclass
class Classifier:
    """A trained square classifier ready for inference on whole boards."""

    module: SquareClassifierModule
    crop_spec: CropSpec
    device: torch.device

    @torch.inference_mode()
    def predict_proba(self, crops: np.ndarray, batch_boards: int = 16) -> np.ndarray:
        """(N, 64, 3, H, W) uint8 crops -> (N, 64, 13) float32 class probabilities."""
        crops = np.asarray(crops)
        if crops.ndim != 5 or crops.shape[1] != 64:
            raise ValueError(f"expected crops of shape (N, 64, 3, H, W), got {crops.shape}")
        out = np.empty((crops.shape[0], 64, 13), dtype=np.float32)
        squares = torch.arange(64, device=self.device)
        for start in range(0, crops.shape[0], batch_boards):
            chunk = torch.from_numpy(crops[start:start + batch_boards]).to(self.device)
            n = chunk.shape[0]
            log_probs = self.module(to_input(chunk.flatten(0, 1)), squares.repeat(n))
            out[start:start + n] = log_probs.exp().reshape(n, 64, 13).cpu().numpy()
        return out


def load_classifier(path: Path | str, device: str = "cpu") -> Classifier:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model checkpoint not found (run `dvc repro train` or pass --model)")
    try:
        module = SquareClassifierModule.load_from_checkpoint(path, map_location=device)
    except Exception as exc:  # a corrupt or foreign file: say so in one line
        raise UserError(f"{path}: not a chessrec checkpoint ({type(exc).__name__}: {exc})") from None
    module.eval()
    spec = CropSpec(**module.hparams["crop_spec"])
    return Classifier(module=module, crop_spec=spec, device=torch.device(device))
