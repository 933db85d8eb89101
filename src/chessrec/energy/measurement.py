"""What a measurement window yields, and the pure arithmetic behind it.

Every energy figure travels with the method that produced it, so an estimate can never be
mistaken for a measurement further down the pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

#: GPU energy from NVML's total-energy counter (Volta and newer).
NVML_COUNTER = "nvml-counter"
#: GPU energy integrated from sampled NVML power readings.
NVML_SAMPLED = "nvml-sampled"
#: CPU package energy from RAPL counters read through Linux powercap.
RAPL = "rapl"
#: CPU energy *estimated* from process CPU time times a configured power per core.
CPU_TIME_ESTIMATE = "cpu-time-estimate"
#: A device we meant to measure but could not (see ``Measurement.faults``).
UNAVAILABLE = "unavailable"

ESTIMATE_METHODS = frozenset({CPU_TIME_ESTIMATE})


class EnergyWarning(RuntimeWarning):
    """A measurement degraded (missing library, permission, lost device); training goes on."""

PowerSeries = list[tuple[float, float]]


@dataclass(frozen=True)
class Measurement:
    """Energy of one named window, per device (``"gpu:<cuda ordinal>"``, ``"cpu"``).

    ``disagreement`` holds, for GPUs with both a counter and samples, the relative difference
    ``(sampled - counter) / counter``; ``power_series`` holds ``(seconds since window start,
    watts)`` pairs where power was sampled; ``faults`` says why a result is ``partial``.
    """

    name: str
    wall_s: float
    energy_j: dict[str, float]
    mean_power_w: dict[str, float]
    methods: dict[str, str]
    partial: bool = False
    disagreement: dict[str, float] = field(default_factory=dict)
    power_series: dict[str, PowerSeries] = field(default_factory=dict)
    faults: tuple[str, ...] = ()

    @property
    def total_energy_j(self) -> float:
        return float(sum(self.energy_j.values()))

    @property
    def total_mean_power_w(self) -> float:
        return self.total_energy_j / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def is_estimate(self) -> bool:
        """True when any device's figure is an estimate rather than a measurement."""
        return any(method in ESTIMATE_METHODS for method in self.methods.values())

    def summary(self) -> dict[str, Any]:
        """JSON-ready record of the figures and their provenance (without the power series)."""
        return {
            "name": self.name,
            "wall_s": self.wall_s,
            "total_energy_j": self.total_energy_j,
            "total_mean_power_w": self.total_mean_power_w,
            "energy_j": dict(self.energy_j),
            "mean_power_w": dict(self.mean_power_w),
            "methods": dict(self.methods),
            "measured": not self.is_estimate,
            "partial": self.partial,
            "disagreement": dict(self.disagreement),
            "faults": list(self.faults),
        }


def wrapped_delta(start: int, end: int, max_range: int) -> int:
    """Counter increase from ``start`` to ``end`` for a counter that wraps at ``max_range``.

    Only one wrap between reads is detectable, which is why the meter polls RAPL far more
    often than its shortest wrap period (minutes at full package power).
    """
    return end - start if end >= start else end + max_range - start


def integrate(series: Sequence[tuple[float, float]], t0: float, t1: float) -> float:
    """Trapezoidal energy in joules of ``(t, watts)`` samples over ``[t0, t1]``.

    Samples outside the interval only contribute by linear interpolation at its edges; the
    series is assumed sorted by time. Outside the sampled span nothing is extrapolated.
    """
    points = _clip(series, t0, t1)
    return float(
        sum((tb - ta) * (pa + pb) / 2.0 for (ta, pa), (tb, pb) in zip(points, points[1:]))
    )


def _clip(series: Sequence[tuple[float, float]], t0: float, t1: float) -> PowerSeries:
    inside = [(t, p) for t, p in series if t0 <= t <= t1]
    before = [(t, p) for t, p in series if t < t0]
    after = [(t, p) for t, p in series if t > t1]
    if before and inside:
        inside.insert(0, (t0, _lerp(before[-1], inside[0], t0)))
    if after and inside:
        inside.append((t1, _lerp(inside[-1], after[0], t1)))
    if before and after and not inside:
        inside = [(t0, _lerp(before[-1], after[0], t0)), (t1, _lerp(before[-1], after[0], t1))]
    return inside


def _lerp(a: tuple[float, float], b: tuple[float, float], t: float) -> float:
    (ta, pa), (tb, pb) = a, b
    return pa if tb == ta else pa + (pb - pa) * (t - ta) / (tb - ta)


def combine(name: str, per_rank: Sequence[Measurement]) -> Measurement:
    """One measurement for a distributed run: devices of every rank, keyed ``rank<r>/<device>``.

    Energies add up; wall time is the slowest rank's; the run is partial if any rank's is.
    """
    if len(per_rank) == 1:
        return replace(per_rank[0], name=name)

    def keyed(values: dict[str, Any], rank: int) -> dict[str, Any]:
        return {f"rank{rank}/{key}": value for key, value in values.items()}

    merged: dict[str, dict[str, Any]] = {
        "energy_j": {}, "mean_power_w": {}, "methods": {}, "disagreement": {}, "power_series": {}
    }
    for rank, m in enumerate(per_rank):
        for attr, target in merged.items():
            target.update(keyed(getattr(m, attr), rank))
    faults = tuple(f"rank{rank}: {fault}" for rank, m in enumerate(per_rank) for fault in m.faults)
    return Measurement(
        name=name,
        wall_s=max(m.wall_s for m in per_rank),
        partial=any(m.partial for m in per_rank),
        faults=faults,
        **merged,
    )
