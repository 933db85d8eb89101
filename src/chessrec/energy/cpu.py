"""CPU energy: RAPL counters through Linux powercap where readable, else a labelled estimate.

RAPL measures whole CPU packages (every process on them); the estimate charges this process's
CPU time at a configured power per busy core. Virtual machines, containers and kernels that
restrict ``energy_uj`` to root (Linux 5.10 and later) leave only the estimate.
"""

from __future__ import annotations

import resource
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from chessrec.energy.measurement import (
    CPU_TIME_ESTIMATE,
    RAPL,
    EnergyWarning,
    PowerSeries,
    wrapped_delta,
)
from chessrec.energy.source import DeviceResult, FaultHandler

CPU_KEY = "cpu"


@dataclass(frozen=True)
class RaplZone:
    """A top-level RAPL package domain: its counter file and the value at which it wraps."""

    energy_file: Path
    max_energy_uj: int

    def read_uj(self) -> int:
        return int(self.energy_file.read_text())


def rapl_zones(powercap_root: Path) -> list[RaplZone]:
    """The package domains under ``powercap_root``, readable now, or [] where RAPL is unusable.

    Sub-domains (``intel-rapl:0:0`` core, uncore, dram) are skipped because the package
    already contains core and uncore, and ``psys`` because it overlaps every package.
    """
    zones = []
    try:
        for zone_dir in sorted(powercap_root.glob("intel-rapl:*")):
            if zone_dir.name.count(":") != 1 or _zone_name(zone_dir).startswith("psys"):
                continue
            zone = RaplZone(zone_dir / "energy_uj", int((zone_dir / "max_energy_range_uj").read_text()))
            zone.read_uj()
            zones.append(zone)
    except PermissionError as exc:
        warnings.warn(
            f"RAPL counters are not readable ({exc.filename}: permission denied); "
            "CPU energy will be an estimate from CPU time",
            EnergyWarning,
            stacklevel=2,
        )
        return []
    except (OSError, ValueError):
        return []  # no RAPL here (VM, container, non-Intel/AMD): the estimate is labelled as such
    return zones


def _zone_name(zone_dir: Path) -> str:
    try:
        return (zone_dir / "name").read_text().strip()
    except OSError:
        return ""


@dataclass
class RaplSource:
    """Sum of the package counters, accumulated on every tick so wraparounds are never missed."""

    zones: list[RaplZone]
    on_fault: FaultHandler
    key: str = CPU_KEY
    series: PowerSeries = field(default_factory=list)
    total_j: float = 0.0
    failed: bool = False
    _last_uj: list[int] = field(default_factory=list)
    _last_t: float | None = None

    def sample(self, t: float) -> None:
        if self.failed:
            return
        try:
            now_uj = [zone.read_uj() for zone in self.zones]
        except (OSError, ValueError) as exc:
            self.failed = True
            self.on_fault(f"{self.key}: RAPL counter unreadable ({exc}); its figure stops here")
            return
        if self._last_t is not None:
            delta_j = sum(
                wrapped_delta(before, after, zone.max_energy_uj) / 1e6
                for zone, before, after in zip(self.zones, self._last_uj, now_uj)
            )
            self.total_j += delta_j
            if t > self._last_t:
                self.series.append((t, delta_j / (t - self._last_t)))
        self._last_uj, self._last_t = now_uj, t

    def snapshot(self, t: float) -> float:
        return self.total_j

    def result(self, start: float, end: float, t0: float, t1: float) -> DeviceResult:
        return DeviceResult(RAPL, end - start)

    def close(self) -> None:
        """Nothing to release: the counters are plain files read on demand."""


def process_cpu_seconds() -> float:
    """CPU time of this process's threads plus its finished (waited-for) child processes."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@dataclass
class CpuTimeSource:
    """An *estimate*: busy core-seconds of this process times ``watts_per_core``.

    It ignores idle and uncore power and other processes, and counts worker processes only
    once they have exited, so it is a rough figure for comparing runs on the same machine.
    """

    watts_per_core: float
    key: str = CPU_KEY
    series: PowerSeries = field(default_factory=list)
    _last: tuple[float, float] | None = None

    def sample(self, t: float) -> None:
        cpu_s = process_cpu_seconds()
        if self._last is not None and t > self._last[0]:
            self.series.append((t, (cpu_s - self._last[1]) / (t - self._last[0]) * self.watts_per_core))
        self._last = (t, cpu_s)

    def snapshot(self, t: float) -> float:
        assert self._last is not None, "snapshot() follows sample()"
        return self._last[1]

    def result(self, start: float, end: float, t0: float, t1: float) -> DeviceResult:
        return DeviceResult(CPU_TIME_ESTIMATE, (end - start) * self.watts_per_core)

    def close(self) -> None:
        """Nothing to release."""
