"""Lightning callback: energy per epoch and per fit, logged so ``dvc exp show`` has the columns.

Per epoch it logs ``energy/epoch_j`` and ``energy/epoch_mean_w`` with the module's own epoch
metrics; at the end of training ``energy/fit_j``, ``energy/fit_mean_w``, ``energy/fit_wall_s``,
``energy/measured`` (1 only if no figure is an estimate), ``energy/partial`` and
``energy/methods``; beside them ``energy.json`` (methods, faults, disagreement, every epoch) and
a power-over-time plot ``energy_power.png``. Under DDP every rank measures its own device and
rank zero logs the totals.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from matplotlib.figure import Figure

from chessrec.energy.distributed import gather
from chessrec.energy.measurement import EnergyWarning, Measurement
from chessrec.energy.meter import EnergyMeter
from chessrec.fileio import write_atomic

FIT, EPOCH = "fit", "epoch"
PLOT_NAME = "energy_power.png"
SUMMARY_NAME = "energy.json"


class EnergyCallback(pl.Callback):
    """Measure a fit with ``meter``; the PNG goes to ``plot_dir`` (default: dvclive's images).

    With a meter left to pick its GPUs (``gpu_indices=None``), each process measures only the
    device its strategy trains on, and no GPU at all when training on the CPU.
    """

    def __init__(self, meter: EnergyMeter, plot_dir: str | os.PathLike[str] | None = None) -> None:
        self.meter = meter
        self.plot_dir = None if plot_dir is None else Path(plot_dir)
        self.epochs: list[Measurement] = []
        self.fit: Measurement | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.meter.gpu_indices is None and not self.meter.started:
            device = trainer.strategy.root_device
            self.meter.select_gpus([device.index or 0] if device.type == "cuda" else [])

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs, self.fit = [], None
        self.meter.begin_window(FIT)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.meter.begin_window(EPOCH)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = gather(self.meter.end_window(EPOCH), trainer.local_rank)
        self.epochs.append(epoch)
        # Every rank holds the same totals after gather, so no further sync is needed.
        pl_module.log_dict(
            {"energy/epoch_j": epoch.total_energy_j, "energy/epoch_mean_w": epoch.total_mean_power_w},
            on_step=False,
            on_epoch=True,
            sync_dist=False,
            rank_zero_only=True,
        )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Here rather than on_fit_end: the process group and loggers are still up.
        self.fit = gather(self.meter.end_window(FIT), trainer.local_rank)
        if trainer.is_global_zero:
            self._publish(trainer, self.fit)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        for name in (EPOCH, FIT):
            if name in self.meter.open_windows:
                self.meter.end_window(name)

    def _publish(self, trainer: pl.Trainer, fit: Measurement) -> None:
        metrics: dict[str, float | str] = {
            "energy/fit_j": fit.total_energy_j,
            "energy/fit_mean_w": fit.total_mean_power_w,
            "energy/fit_wall_s": fit.wall_s,
            "energy/measured": int(not fit.is_estimate),
            "energy/partial": int(fit.partial),
            "energy/methods": methods_label(fit),
        }
        live = _dvclive(trainer)
        if live is not None:
            # Straight into the summary: logger.log_metrics would advance dvclive's step.
            for name, value in metrics.items():
                live.log_metric(name, value, plot=False)
        else:
            for logger in trainer.loggers:
                logger.log_metrics({k: v for k, v in metrics.items() if not isinstance(v, str)},
                                   step=trainer.global_step)
        out_dir = Path(live.dir) if live is not None else self.plot_dir or Path(trainer.default_root_dir)
        summary = {"fit": fit.summary(), "epochs": [epoch.summary() for epoch in self.epochs]}
        figure = plot_power(fit)
        try:
            write_atomic(out_dir / SUMMARY_NAME, json.dumps(summary, indent=2).encode())
            if self.plot_dir is None and live is not None:
                live.log_image(PLOT_NAME, figure)
            else:
                write_figure(figure, (self.plot_dir or out_dir) / PLOT_NAME)
        except OSError as exc:
            warnings.warn(f"energy report not written ({exc})", EnergyWarning, stacklevel=2)


def methods_label(measurement: Measurement) -> str:
    """``"cpu=rapl gpu:0=nvml-counter"``: provenance short enough for an experiments table."""
    return " ".join(f"{device}={method}" for device, method in sorted(measurement.methods.items()))


def plot_power(measurement: Measurement) -> Figure:
    """Power over time per device, its method in the legend (an estimate stays labelled one)."""
    figure = Figure(figsize=(8, 3.5), layout="constrained")
    axes = figure.add_subplot()
    for device, series in sorted(measurement.power_series.items()):
        times, watts = zip(*series)
        axes.plot(times, watts, linewidth=1, label=f"{device} ({measurement.methods.get(device, '?')})")
    if measurement.power_series:
        axes.legend(loc="best", fontsize="small")
    axes.set_xlabel("time since start of window [s]")
    axes.set_ylabel("power [W]")
    notes = [note for note, flag in (("includes an estimate", measurement.is_estimate),
                                     ("partial", measurement.partial)) if flag]
    title = f"{measurement.name}: {measurement.total_energy_j:.1f} J in {measurement.wall_s:.1f} s"
    axes.set_title(title + (f" ({', '.join(notes)})" if notes else ""))
    return figure


def write_figure(figure: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_atomic(path, buffer.getvalue())


def _dvclive(trainer: pl.Trainer) -> Any | None:
    """The ``dvclive.Live`` behind a DVCLiveLogger, if the trainer has one."""
    for logger in trainer.loggers:
        if type(logger).__module__.startswith("dvclive."):
            return logger.experiment
    return None
