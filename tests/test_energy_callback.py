"""The Lightning callback in real (tiny) Trainer runs logging through dvclive."""

import json
import warnings

import pytest
import pytorch_lightning as pl
import torch
from dvclive.lightning import DVCLiveLogger
from torch.utils.data import DataLoader, TensorDataset

from chessrec.energy import EnergyCallback, EnergyMeter, EnergyWarning
from chessrec.energy.simulated import SimulatedGpu, SimulatedNVML

EPOCHS = 2


class TinyModel(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(8, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.layer(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def tiny_fit(out_dir, meter, plot_dir=None, extra_callbacks=(), **trainer_kwargs):
    """Train TinyModel for EPOCHS epochs on CPU, logging to ``out_dir/dvclive``; returns the callback."""
    data = TensorDataset(torch.randn(64, 8), torch.randint(0, 2, (64,)))
    logger = DVCLiveLogger(dir=str(out_dir / "dvclive"), report=None, save_dvc_exp=False, dvcyaml=False)
    callback = EnergyCallback(meter, plot_dir=plot_dir)
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        logger=logger,
        callbacks=[callback, *extra_callbacks],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out_dir,
        **({"devices": 1} | trainer_kwargs),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(TinyModel(), DataLoader(data, batch_size=16))
    return callback


def _fit(tmp_path, meter, plot_dir=None, extra_callbacks=()):
    tiny_fit(tmp_path, meter, plot_dir, extra_callbacks)
    return tmp_path / "dvclive"


def test_callback_writes_fit_and_epoch_energy_to_dvclive_metrics(tmp_path):
    with EnergyMeter(gpu_indices=[], powercap_root=tmp_path / "no-rapl") as meter:
        live_dir = _fit(tmp_path, meter)
    metrics = json.loads((live_dir / "metrics.json").read_text())
    energy = metrics["energy"]
    assert energy["fit_j"] > 0 and energy["fit_wall_s"] > 0 and energy["fit_mean_w"] > 0
    assert energy["measured"] == 0 and energy["partial"] == 0  # CPU time estimate, labelled
    assert energy["methods"] == "cpu=cpu-time-estimate"
    assert energy["epoch_j"] > 0 and "epoch_mean_w" in energy
    assert "train" in metrics  # the module's own metrics are still there
    history = (live_dir / "plots" / "metrics" / "energy" / "epoch_j.tsv").read_text().splitlines()
    assert len(history) == 1 + EPOCHS  # header + one row per epoch
    summary = json.loads((live_dir / "energy.json").read_text())
    assert summary["fit"]["methods"] == {"cpu": "cpu-time-estimate"} and summary["fit"]["measured"] is False
    assert len(summary["epochs"]) == EPOCHS
    assert sum(e["total_energy_j"] for e in summary["epochs"]) <= energy["fit_j"]
    png = live_dir / "plots" / "images" / "energy_power.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_callback_puts_power_plot_in_plot_dir(tmp_path):
    with EnergyMeter(gpu_indices=[], powercap_root=tmp_path / "no-rapl") as meter:
        _fit(tmp_path, meter, plot_dir=tmp_path / "plots")
    assert (tmp_path / "plots" / "energy_power.png").stat().st_size > 1000


def test_gpu_lost_during_training_marks_fit_partial_and_training_finishes(tmp_path):
    gpu = SimulatedGpu.constant(200.0)
    nvml = SimulatedNVML([gpu])
    meter = EnergyMeter(gpu_indices=[0], sample_interval_s=0.01, nvml=nvml, powercap_root=tmp_path / "no-rapl")

    class LoseGpuAfterFirstEpoch(pl.Callback):  # mid-fit, however fast or slow this machine is
        def on_train_epoch_end(self, trainer, pl_module):
            gpu.lost_after_s = 0.0

    with meter, pytest.warns(EnergyWarning, match="gpu:0"):
        live_dir = _fit(tmp_path, meter, extra_callbacks=[LoseGpuAfterFirstEpoch()])
    energy = json.loads((live_dir / "metrics.json").read_text())["energy"]
    assert energy["partial"] == 1
    summary = json.loads((live_dir / "energy.json").read_text())["fit"]
    assert summary["methods"]["gpu:0"] == "nvml-sampled" and summary["faults"]
