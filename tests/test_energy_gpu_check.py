"""The GPU check script stays runnable: a short simulated dry run writes its JSON report."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_energy_check.py"


@pytest.mark.slow  # a subprocess importing torch and Lightning, then a few seconds of training
def test_gpu_check_dry_run_reports_counter_samples_and_overhead(tmp_path):
    out = tmp_path / "check.json"
    args = ["--simulate", "--seconds", "3", "--short-window-s", "0.5", "--batch", "2", "--out", str(out)]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["simulated"] is True
    assert report["metered"]["method"] == "nvml-counter"
    assert abs(report["metered"]["disagreement"]) < 0.05
    assert report["short_windows"] and report["interval_s_achieved_mean"] > 0
    assert 0 <= report["sampler_cpu_fraction"] < 1
