"""The contract between the meter and one measured device (a GPU, the CPU)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chessrec.energy.measurement import PowerSeries

#: called by a source, with a one-line reason, when its measurement degrades.
FaultHandler = Callable[[str], None]


@dataclass(frozen=True)
class DeviceResult:
    """One device's figure for one window; ``energy_j`` is None when nothing could be measured."""

    method: str
    energy_j: float | None
    disagreement: float | None = None


class Source(Protocol):
    """A device the meter polls: ``sample`` on every tick, ``snapshot`` at window edges.

    The meter calls both under its lock, ``snapshot(t)`` right after ``sample(t)``, so a source
    may update counters in ``sample`` and merely report them in ``snapshot``.
    """

    key: str
    series: PowerSeries

    def sample(self, t: float) -> None: ...

    def snapshot(self, t: float) -> Any: ...

    def result(self, start: Any, end: Any, t0: float, t1: float) -> DeviceResult: ...

    def close(self) -> None: ...
