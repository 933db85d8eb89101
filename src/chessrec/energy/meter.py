"""Named measurement windows over every device this process uses, fed by one sampler thread.

Windows may nest and overlap (epochs inside a fit): each only remembers its start time and the
devices' counters at that moment, while a background thread polls power for all of them.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chessrec.energy.cpu import CpuTimeSource, RaplSource, rapl_zones
from chessrec.energy.measurement import UNAVAILABLE, EnergyWarning, Measurement
from chessrec.energy.nvml import NvmlSession, open_gpus
from chessrec.energy.source import Source
from chessrec.errors import UserError


@dataclass(frozen=True)
class SamplerStats:
    """How the sampler thread kept up: achieved tick spacing and the CPU time it spent."""

    ticks: int
    mean_interval_s: float
    max_interval_s: float
    cpu_s: float


@dataclass
class _Window:
    t0: float
    snapshots: dict[str, Any]


class EnergyMeter:
    """Measure energy per device over named windows; see :class:`Measurement` for the result.

    ``gpu_indices`` are CUDA ordinals as torch numbers them (None: every visible GPU, [] none);
    ``nvml`` replaces the ``pynvml`` module (tests inject a fake); hardware faults become
    :class:`EnergyWarning` and partial results, never exceptions.
    """

    def __init__(
        self,
        gpu_indices: list[int] | None = None,
        cpu: bool = True,
        sample_interval_s: float = 0.1,
        cpu_watts_per_core: float = 10.0,
        nvml: Any | None = None,
        powercap_root: Path = Path("/sys/class/powercap"),
    ) -> None:
        if not sample_interval_s > 0:
            raise UserError(f"energy.sample_interval_s must be > 0 seconds, got {sample_interval_s}")
        if not cpu_watts_per_core >= 0:
            raise UserError(f"energy.cpu_watts_per_core must be >= 0 watts, got {cpu_watts_per_core}")
        self._gpu_indices = None if gpu_indices is None else list(gpu_indices)
        self._cpu = cpu
        self._interval_s = float(sample_interval_s)
        self._watts_per_core = float(cpu_watts_per_core)
        self._nvml = nvml
        self._powercap_root = Path(powercap_root)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: NvmlSession | None = None
        self._sources: list[Source] = []
        self._faults: list[str] = []
        self._windows: dict[str, _Window] = {}
        self._closed = False
        self._ticks = 0
        self._last_tick = 0.0
        self._interval_sum = 0.0
        self._interval_max = 0.0
        self._sampler_cpu_s = 0.0

    @property
    def gpu_indices(self) -> list[int] | None:
        return None if self._gpu_indices is None else list(self._gpu_indices)

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def open_windows(self) -> tuple[str, ...]:
        return tuple(self._windows)

    def select_gpus(self, cuda_ordinals: list[int]) -> None:
        """Measure exactly these GPUs (e.g. the one a DDP rank trains on); before any window."""
        if self.started:
            raise RuntimeError("select_gpus() must come before the first begin_window()")
        self._gpu_indices = list(cuda_ordinals)

    def begin_window(self, name: str) -> None:
        if self._closed:
            raise RuntimeError("the energy meter is closed")
        if name in self._windows:
            raise ValueError(f"energy window {name!r} is already open")
        if not self.started:
            self._start()
        with self._lock:
            t0 = self._tick()
            self._windows[name] = _Window(t0, {s.key: s.snapshot(t0) for s in self._sources})

    def end_window(self, name: str) -> Measurement:
        if self._closed:
            raise RuntimeError("the energy meter is closed; its open windows were abandoned")
        if name not in self._windows:
            raise ValueError(f"energy window {name!r} was never begun")
        with self._lock:
            window = self._windows.pop(name)
            t1 = self._tick()
            ends = {s.key: s.snapshot(t1) for s in self._sources}
            measurement = self._measure(name, window, ends, t1)
            self._prune()
        return measurement

    @property
    def sampler_stats(self) -> SamplerStats:
        with self._lock:
            mean = self._interval_sum / (self._ticks - 1) if self._ticks > 1 else 0.0
            return SamplerStats(self._ticks, mean, self._interval_max, self._sampler_cpu_s)

    def close(self) -> None:
        """Stop the sampler and release NVML; open windows are abandoned. Safe to call twice."""
        self._closed = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        for source in self._sources:
            source.close()
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> EnergyMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _start(self) -> None:
        self._session = open_gpus(self._nvml, self._gpu_indices, os.environ, self._fault)
        self._sources = list(self._session.sources)
        if self._cpu:
            zones = rapl_zones(self._powercap_root)
            self._sources.append(
                RaplSource(zones, self._fault) if zones else CpuTimeSource(self._watts_per_core)
            )
        self._thread = threading.Thread(target=self._run, name="energy-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Tick on a fixed schedule (no drift from the tick's own cost) until closed."""
        deadline = time.perf_counter()
        while True:
            deadline += self._interval_s
            if self._stop.wait(max(0.0, deadline - time.perf_counter())):
                return
            cpu_before = time.thread_time()
            with self._lock:
                t = self._tick()
                if self._ticks:
                    gap = t - self._last_tick
                    self._interval_sum += gap
                    self._interval_max = max(self._interval_max, gap)
                self._ticks += 1
                self._last_tick = t
                self._sampler_cpu_s += time.thread_time() - cpu_before
            deadline = max(deadline, time.perf_counter() - self._interval_s)  # skip missed ticks

    def _tick(self) -> float:
        t = time.perf_counter()
        for source in self._sources:
            source.sample(t)
        return t

    def _fault(self, reason: str) -> None:
        self._faults.append(reason)
        warnings.warn(reason, EnergyWarning, stacklevel=2)

    def _measure(self, name: str, window: _Window, ends: dict[str, Any], t1: float) -> Measurement:
        t0 = window.t0
        energy, power, methods, disagreement, series = {}, {}, {}, {}, {}
        for source in self._sources:
            result = source.result(window.snapshots[source.key], ends[source.key], t0, t1)
            methods[source.key] = result.method
            if result.energy_j is not None:
                energy[source.key] = result.energy_j
                power[source.key] = result.energy_j / (t1 - t0) if t1 > t0 else 0.0
            if result.disagreement is not None:
                disagreement[source.key] = result.disagreement
            samples = [(t - t0, w) for t, w in source.series if t0 <= t <= t1]
            if samples:
                series[source.key] = samples
        faults = tuple(self._faults)  # degradations are permanent: every later window is affected
        return Measurement(
            name=name,
            wall_s=t1 - t0,
            energy_j=energy,
            mean_power_w=power,
            methods=methods,
            partial=bool(faults) or UNAVAILABLE in methods.values(),
            disagreement=disagreement,
            power_series=series,
            faults=faults,
        )

    def _prune(self) -> None:
        """Drop samples no open window can need, so long runs do not grow without bound."""
        horizon = min((w.t0 for w in self._windows.values()), default=time.perf_counter())
        for source in self._sources:
            keep = next((i for i, (t, _) in enumerate(source.series) if t >= horizon), len(source.series))
            del source.series[: max(0, keep - 1)]
