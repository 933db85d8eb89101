"""The CI reproduction check compares quality metrics, never machine figures (scripts/check_reproduction.py)."""

from __future__ import annotations

import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from check_reproduction import compare_metrics  # noqa: E402

DIFF = {  # the shape of DVC 3's `dvc metrics diff --all --json`
    "dvclive/evaluate/metrics.json": {
        "board_acc": {"old": 0.14, "new": 0.14, "diff": 0.0},
        "decoders.argmax.square_acc": {"old": 0.93, "new": 0.935, "diff": 0.005},
        "decoders.continuity.board_acc": {"old": 0.78, "new": 0.67, "diff": -0.11},
        "latency.model_p50_ms": {"old": 13.0, "new": 40.0, "diff": 27.0},
        "energy.methods": {"old": "cpu=cpu-time-estimate", "new": "cpu=rapl"},
    },
    "dvclive/train/metrics.json": {"energy.fit_j": {"old": 6000.0, "new": 9000.0, "diff": 3000.0}},
}


def test_quality_metrics_within_tolerance_pass_and_machine_figures_are_not_compared():
    problems, compared = compare_metrics(DIFF, tolerance=0.15)
    assert problems == [] and compared == 3


def test_a_quality_metric_beyond_tolerance_is_reported_with_file_and_name():
    problems, _ = compare_metrics(DIFF, tolerance=0.05)
    assert problems == ["dvclive/evaluate/metrics.json: decoders.continuity.board_acc = 0.6700, committed 0.7800 "
                        "(tolerance 0.05)"]
    moved = {"m.json": {"square_acc": {"old": 0.97, "new": 0.95}, "errors_per_board": {"old": 1.8, "new": 2.3}}}
    problems, _ = compare_metrics(moved, tolerance=0.15)
    assert problems == ["m.json: square_acc = 0.9500, committed 0.9700 (tolerance 0.01)",
                        "m.json: errors_per_board = 2.3000, committed 1.8000 (tolerance 0.4)"]
