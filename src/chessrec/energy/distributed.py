"""Totals over a distributed run: each rank measures its own devices, every rank gets the sum."""

from __future__ import annotations

from dataclasses import replace

from chessrec.energy.measurement import RAPL, Measurement, combine


def gather(measurement: Measurement, local_rank: int) -> Measurement:
    """All ranks' measurements combined; a collective call that every rank must make.

    RAPL counts whole CPU packages, so on each node only local rank 0 contributes it; other
    ranks' copies of the same counter would double the figure. Outside a process group (or
    with one process) the measurement comes back unchanged.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return measurement
    share = measurement if local_rank == 0 else without_machine_wide(measurement)
    per_rank: list[Measurement | None] = [None] * dist.get_world_size()
    dist.all_gather_object(per_rank, share)
    return combine(measurement.name, [m for m in per_rank if m is not None])


def without_machine_wide(measurement: Measurement) -> Measurement:
    """The measurement without devices whose counters are shared by every process on a node."""
    shared = {key for key, method in measurement.methods.items() if method == RAPL}

    def drop(values: dict) -> dict:
        return {key: value for key, value in values.items() if key not in shared}

    return replace(
        measurement,
        energy_j=drop(measurement.energy_j),
        mean_power_w=drop(measurement.mean_power_w),
        methods=drop(measurement.methods),
        power_series=drop(measurement.power_series),
    )
