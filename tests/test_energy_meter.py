"""The meter against a simulated NVML and a fake powercap tree: figures, methods and faults."""

import os
import time
from pathlib import Path

import pytest

from chessrec.energy import EnergyMeter, EnergyWarning
from chessrec.energy.measurement import (
    CPU_TIME_ESTIMATE,
    NVML_COUNTER,
    NVML_SAMPLED,
    RAPL,
    UNAVAILABLE,
)
from chessrec.energy.nvml import visible_devices
from chessrec.energy.simulated import (
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    SimulatedGpu,
    SimulatedNVML,
)
from chessrec.errors import UserError

INTERVAL = 0.02


@pytest.fixture(autouse=True)
def _all_gpus_visible(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def _meter(nvml, tmp_path, **kwargs):
    kwargs.setdefault("cpu", False)
    return EnergyMeter(sample_interval_s=INTERVAL, nvml=nvml, powercap_root=tmp_path / "powercap", **kwargs)


def _window(meter, seconds=0.3, name="w"):
    meter.begin_window(name)
    time.sleep(seconds)
    return meter.end_window(name)


def test_constant_power_counter_and_samples_agree(tmp_path):
    with _meter(SimulatedNVML([SimulatedGpu.constant(120.0)]), tmp_path) as meter:
        m = _window(meter)
    assert m.methods == {"gpu:0": NVML_COUNTER}
    assert m.energy_j["gpu:0"] == pytest.approx(120.0 * m.wall_s, rel=0.05)
    assert m.mean_power_w["gpu:0"] == pytest.approx(120.0, rel=0.05)
    assert abs(m.disagreement["gpu:0"]) < 0.05
    assert not m.partial and not m.is_estimate
    assert len(m.power_series["gpu:0"]) >= 3  # the sampler ticked inside the window


def test_ramping_power_without_counter_is_integrated_from_samples(tmp_path):
    gpu = SimulatedGpu.ramp(50.0, 200.0)
    gpu.energy_j = None  # a pre-Volta GPU: no total-energy counter
    with _meter(SimulatedNVML([gpu]), tmp_path) as meter:
        m = _window(meter)
    series = m.power_series["gpu:0"]
    assert m.methods == {"gpu:0": NVML_SAMPLED} and not m.partial and m.disagreement == {}
    assert series[-1][1] - series[0][1] == pytest.approx(200.0 * m.wall_s, rel=0.05)
    # power rises linearly, so the exact energy is the mean of the end powers times the time
    assert m.energy_j["gpu:0"] == pytest.approx((series[0][1] + series[-1][1]) / 2 * m.wall_s, rel=0.02)


def test_ramping_power_counter_matches_sampled_integral(tmp_path):
    with _meter(SimulatedNVML([SimulatedGpu.ramp(50.0, 200.0)]), tmp_path) as meter:
        m = _window(meter)
    assert m.methods == {"gpu:0": NVML_COUNTER}
    assert abs(m.disagreement["gpu:0"]) < 0.05


def test_nested_windows_share_one_sampler(tmp_path):
    with _meter(SimulatedNVML([SimulatedGpu.constant(100.0)]), tmp_path) as meter:
        meter.begin_window("fit")
        inner = _window(meter, 0.1, "epoch")
        time.sleep(0.1)
        outer = meter.end_window("fit")
        stats = meter.sampler_stats
    assert outer.wall_s > inner.wall_s + 0.05
    assert outer.energy_j["gpu:0"] > inner.energy_j["gpu:0"]
    assert stats.ticks >= 1 and stats.cpu_s >= 0.0


def test_gpu_indices_are_cuda_ordinals_mapped_through_visible_devices(tmp_path, monkeypatch):
    gpus = [SimulatedGpu.constant(w) for w in (100.0, 200.0, 300.0)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    with _meter(SimulatedNVML(gpus), tmp_path) as meter:
        m = _window(meter, 0.1)
    assert sorted(m.energy_j) == ["gpu:0", "gpu:1"]
    assert m.mean_power_w["gpu:1"] == pytest.approx(300.0, rel=0.05)  # cuda:1 is NVML GPU 2


def test_visible_devices_by_full_and_abbreviated_uuid(tmp_path, monkeypatch):
    nvml = SimulatedNVML([SimulatedGpu.constant(w) for w in (100.0, 200.0, 300.0)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{nvml.gpus[2].uuid},{nvml.gpus[1].uuid[:12]}")
    with _meter(nvml, tmp_path, gpu_indices=[1]) as meter:
        m = _window(meter, 0.1)
    assert list(m.energy_j) == ["gpu:1"]
    assert m.mean_power_w["gpu:1"] == pytest.approx(200.0, rel=0.05)


def test_visible_devices_parse_like_cuda():
    assert visible_devices(None) is None
    assert visible_devices("") == []
    assert visible_devices(" 0, 2") == ["0", "2"]
    assert visible_devices("0,-1,2") == ["0"]  # CUDA ignores everything after an invalid token
    assert visible_devices("1,1") == ["1"]


def test_empty_cuda_visible_devices_measures_no_gpu_without_fault(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    nvml = SimulatedNVML([SimulatedGpu.constant(100.0)])
    with _meter(nvml, tmp_path, cpu=True) as meter:
        m = _window(meter, 0.05)
    assert list(m.methods) == ["cpu"] and not m.partial
    assert nvml.calls.get("nvmlInit", 0) == 0


def test_missing_nvml_on_a_cpu_machine_is_not_a_fault(tmp_path):
    nvml = SimulatedNVML([], init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    with _meter(nvml, tmp_path, cpu=True) as meter:
        m = _window(meter, 0.05)
    assert m.methods == {"cpu": CPU_TIME_ESTIMATE} and not m.partial


def test_missing_nvml_when_gpus_are_expected_warns_and_marks_partial(tmp_path):
    nvml = SimulatedNVML([], init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    with pytest.warns(EnergyWarning, match="NVML failed to initialise"):
        with _meter(nvml, tmp_path, cpu=True, gpu_indices=[0]) as meter:
            m = _window(meter, 0.05)
    assert m.partial and "cpu" in m.energy_j
    assert any("NVML" in fault for fault in m.faults)


def test_power_not_permitted_leaves_gpu_unmeasured_and_partial(tmp_path):
    gpu = SimulatedGpu.constant(100.0, power_error=NVML_ERROR_NO_PERMISSION)
    with pytest.warns(EnergyWarning, match="gpu:0: not measured"):
        with _meter(SimulatedNVML([gpu]), tmp_path) as meter:
            m = _window(meter, 0.05)
    assert m.partial and m.energy_j == {}


def test_counter_not_permitted_degrades_to_samples_and_partial(tmp_path):
    gpu = SimulatedGpu.constant(100.0, counter_error=NVML_ERROR_NO_PERMISSION)
    with pytest.warns(EnergyWarning, match="energy counter unreadable"):
        with _meter(SimulatedNVML([gpu]), tmp_path) as meter:
            m = _window(meter, 0.1)
    assert m.methods == {"gpu:0": NVML_SAMPLED} and m.partial
    assert m.energy_j["gpu:0"] == pytest.approx(100.0 * m.wall_s, rel=0.05)


def test_gpu_lost_mid_window_keeps_samples_until_loss_and_marks_partial(tmp_path):
    gpu = SimulatedGpu.constant(100.0, lost_after_s=0.15)
    with pytest.warns(EnergyWarning, match="gpu:0"):
        with _meter(SimulatedNVML([gpu]), tmp_path) as meter:
            during = _window(meter, 0.4, "during")
            after = _window(meter, 0.05, "after")
    assert during.methods == {"gpu:0": NVML_SAMPLED} and during.partial
    assert 0.0 < during.energy_j["gpu:0"] <= 100.0 * 0.2  # nothing counted after the loss at 0.15 s
    assert after.methods == {"gpu:0": UNAVAILABLE} and after.partial and after.energy_j == {}


def test_mig_instance_in_visible_devices_is_skipped_with_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-4b1d3b5e-0e4b-5f1a-9f43-1c1d1e1f2021")
    with pytest.warns(EnergyWarning, match="MIG instance"):
        with _meter(SimulatedNVML([SimulatedGpu.constant(100.0)]), tmp_path, cpu=True) as meter:
            m = _window(meter, 0.05)
    assert m.partial and list(m.energy_j) == ["cpu"]


def test_gpu_in_mig_mode_is_skipped_with_warning(tmp_path):
    gpus = [SimulatedGpu.constant(100.0, mig=True), SimulatedGpu.constant(50.0, mig=None)]
    with pytest.warns(EnergyWarning, match="MIG is enabled"):
        with _meter(SimulatedNVML(gpus), tmp_path) as meter:
            m = _window(meter, 0.05)
    assert m.partial and list(m.energy_j) == ["gpu:1"]


def test_meter_shuts_nvml_down_on_close(tmp_path):
    nvml = SimulatedNVML([SimulatedGpu.constant(100.0)])
    with _meter(nvml, tmp_path) as meter:
        _window(meter, 0.02)
    assert nvml.initialised == 0
    with pytest.raises(RuntimeError):
        meter.begin_window("again")


def write_powercap(root: Path, zones: dict[str, tuple[str, int, int]]) -> Path:
    """zones: directory name -> (zone name, energy_uj, max_energy_range_uj)."""
    for directory, (name, energy, max_range) in zones.items():
        zone = root / directory
        zone.mkdir(parents=True)
        (zone / "name").write_text(name + "\n")
        (zone / "energy_uj").write_text(f"{energy}\n")
        (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    return root


def _replace(path: Path, text: str) -> None:
    """Change a counter file in one step, as sysfs would: the sampler thread may be reading it."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_rapl_counter_wraparound_is_accumulated(tmp_path):
    root = write_powercap(tmp_path / "powercap", {
        "intel-rapl:0": ("package-0", 999_000_000, 1_000_000_000),
        "intel-rapl:0:0": ("core", 5, 1_000_000_000),  # inside the package: not added again
        "intel-rapl:1": ("psys", 7, 1_000_000_000),  # overlaps the packages: ignored
    })
    counter = root / "intel-rapl:0" / "energy_uj"
    with EnergyMeter(gpu_indices=[], sample_interval_s=INTERVAL, powercap_root=root) as meter:
        meter.begin_window("w")
        _replace(counter, "999500000\n")  # +0.5 J
        time.sleep(0.05)
        _replace(counter, "1500000\n")  # wrapped: +0.5 J to the top, +1.5 J after
        time.sleep(0.05)
        m = meter.end_window("w")
    assert m.methods == {"cpu": RAPL} and not m.is_estimate
    assert m.energy_j["cpu"] == pytest.approx(2.5)


def test_without_rapl_cpu_energy_is_a_labelled_estimate(tmp_path):
    with EnergyMeter(gpu_indices=[], cpu_watts_per_core=12.0, powercap_root=tmp_path / "none") as meter:
        meter.begin_window("w")
        deadline = time.process_time() + 0.2
        while time.process_time() < deadline:
            pass  # keep one core busy for 0.2 s of CPU time
        m = meter.end_window("w")
    assert m.methods == {"cpu": CPU_TIME_ESTIMATE} and m.is_estimate
    assert m.energy_j["cpu"] == pytest.approx(0.2 * 12.0, rel=0.3)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of their mode")
def test_unreadable_rapl_falls_back_to_estimate_with_warning(tmp_path):
    root = write_powercap(tmp_path / "powercap", {"intel-rapl:0": ("package-0", 1, 1_000_000)})
    (root / "intel-rapl:0" / "energy_uj").chmod(0)
    with pytest.warns(EnergyWarning, match="permission denied"):
        with EnergyMeter(gpu_indices=[], powercap_root=root) as meter:
            m = _window(meter, 0.02)
    assert m.methods == {"cpu": CPU_TIME_ESTIMATE}


def test_bad_sampling_interval_is_a_user_error():
    with pytest.raises(UserError, match="energy.sample_interval_s"):
        EnergyMeter(sample_interval_s=0)
