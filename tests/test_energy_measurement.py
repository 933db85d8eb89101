"""Pure arithmetic of energy figures: integration, counter wraparound, combining ranks."""

import pytest

from chessrec.energy.distributed import without_machine_wide
from chessrec.energy.measurement import (
    CPU_TIME_ESTIMATE,
    NVML_COUNTER,
    RAPL,
    Measurement,
    combine,
    integrate,
    wrapped_delta,
)


def test_integrate_constant_power_is_power_times_time():
    series = [(t / 10, 50.0) for t in range(0, 21)]
    assert integrate(series, 0.0, 2.0) == pytest.approx(100.0)


def test_integrate_ramp_is_exact_for_linear_power():
    series = [(t / 4, 10.0 + 20.0 * t / 4) for t in range(0, 13)]  # 10 W rising 20 W/s over 3 s
    assert integrate(series, 0.0, 3.0) == pytest.approx(10.0 * 3 + 20.0 * 9 / 2)


def test_integrate_interpolates_at_window_edges_between_samples():
    series = [(0.0, 0.0), (1.0, 100.0), (2.0, 100.0)]  # ramps to 100 W, then holds
    assert integrate(series, 0.5, 1.5) == pytest.approx(0.5 * (50 + 100) / 2 + 0.5 * 100)


def test_integrate_does_not_extrapolate_beyond_the_samples():
    assert integrate([(1.0, 10.0), (2.0, 10.0)], 0.0, 5.0) == pytest.approx(10.0)
    assert integrate([(1.0, 10.0)], 0.0, 5.0) == 0.0


def test_wrapped_delta_handles_counter_wraparound():
    assert wrapped_delta(100, 250, 1000) == 150
    assert wrapped_delta(900, 50, 1000) == 150


def _measurement(methods, energy, wall=2.0, partial=False, faults=()):
    return Measurement(
        name="fit",
        wall_s=wall,
        energy_j=energy,
        mean_power_w={k: v / wall for k, v in energy.items()},
        methods=methods,
        partial=partial,
        faults=faults,
    )


def test_estimate_is_never_reported_as_measurement():
    measured = _measurement({"gpu:0": NVML_COUNTER, "cpu": RAPL}, {"gpu:0": 10.0, "cpu": 5.0})
    estimated = _measurement({"gpu:0": NVML_COUNTER, "cpu": CPU_TIME_ESTIMATE}, {"gpu:0": 10.0, "cpu": 5.0})
    assert not measured.is_estimate
    assert estimated.is_estimate and estimated.summary()["measured"] is False
    assert measured.total_energy_j == 15.0 and measured.total_mean_power_w == 7.5


def test_combine_keys_devices_by_rank_and_sums_energy():
    rank0 = _measurement({"gpu:0": NVML_COUNTER}, {"gpu:0": 10.0}, wall=2.0)
    rank1 = _measurement({"gpu:0": NVML_COUNTER}, {"gpu:0": 30.0}, wall=4.0, partial=True, faults=("lost",))
    total = combine("fit", [rank0, rank1])
    assert total.energy_j == {"rank0/gpu:0": 10.0, "rank1/gpu:0": 30.0}
    assert total.total_energy_j == 40.0 and total.wall_s == 4.0
    assert total.partial and total.faults == ("rank1: lost",)


def test_machine_wide_rapl_is_dropped_from_non_leading_ranks():
    m = _measurement({"gpu:1": NVML_COUNTER, "cpu": RAPL}, {"gpu:1": 10.0, "cpu": 5.0})
    shared = without_machine_wide(m)
    assert shared.energy_j == {"gpu:1": 10.0} and shared.methods == {"gpu:1": NVML_COUNTER}
