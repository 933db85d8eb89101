"""`chessrec report` end to end on saved and real `dvc exp show --json` output: files, text, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib.image
import pytest

from chessrec.cli import main

PARAMS = textwrap.dedent("""\
    report:
      min_points_per_kj: 1.0
      min_points_per_ms: 0.5
      target_board_acc: 0.95
      latency_budget_ms: 50.0
    """)


def _data(model, n_games, epochs, acc, fit_j, latency, measured=0):
    return {"params": {"params.yaml": {"data": {"model": {"name": model}, "data": {"n_games": n_games},
                                                "train": {"epochs": epochs},
                                                "evaluate": {"best_decoder": "constrained"}}}},
            "metrics": {"dvclive/train/metrics.json": {"data": {"energy": {"fit_j": fit_j, "measured": measured}}},
                        "dvclive/evaluate/metrics.json": {"data": {
                            "board_acc": acc, "square_acc": 0.9 + acc / 10, "latency": {"model_p50_ms": latency - 0.5},
                            "decoders": {"constrained": {"latency_p50_ms": 0.5}},
                            "energy": {"measured": measured, "inference_j_per_board": 0.05}}}}}


def _exp(name, data, state="success"):
    return {"revs": [{"rev": name * 4, "name": name, "data": data, "error": None}],
            "executor": {"state": state}, "name": name}


def _sweep_json(path: Path, experiments) -> Path:
    base = _data("tiny_cnn", 4, 1, 0.30, 1000, 1.0)
    path.write_text(json.dumps([{"rev": "workspace", "name": None, "data": base, "experiments": None},
                                {"rev": "f00d" * 10, "name": "main", "data": base, "experiments": experiments}]))
    return path


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    (tmp_path / "params.yaml").write_text(PARAMS)
    return _sweep_json(tmp_path / "exp.json", [
        _exp("tiny-8", _data("tiny_cnn", 8, 1, 0.50, 2000, 1.0)),
        _exp("tiny-8-e2", _data("tiny_cnn", 8, 2, 0.55, 4000, 1.0)),
        _exp("resnet-8", _data("resnet18", 8, 1, 0.56, 30000, 6.0)),
        _exp("mobile-8", _data("mobilenet", 8, 1, 0.52, 9000, 3.0)),
        _exp("gpu-run", _data("resnet18", 8, 2, 0.60, 60000, 6.0, measured=1)),
        _exp("waiting", {}, state="queued"),
    ])


def _report(tmp_path: Path, *extra: str) -> int:
    return main(["report", "--params", str(tmp_path / "params.yaml"), "--exp-json", str(tmp_path / "exp.json"),
                 "--out", str(tmp_path / "out"), *extra])


def test_report_writes_markdown_and_readable_plots(sweep, tmp_path):
    assert _report(tmp_path) == 0
    out = tmp_path / "out"
    text = (out / "report.md").read_text()
    for png in ("pareto_energy.png", "pareto_latency.png", "learning_data_size.png", "learning_epochs.png"):
        assert f"]({png})" in text
        assert matplotlib.image.imread(out / png).shape[0] > 100
    assert "**tiny-8-e2: stop optimising.**" in text  # tiny-8 -> tiny-8-e2 gains 2.5/kJ, next 0.1/kJ
    assert "| tiny-8 → tiny-8-e2 | +5.00 | 2 | 2.5 | estimated → estimated |" in text
    assert "estimated → measured ⚠ mixed" in text
    assert "measured for gpu-run but estimated for main, tiny-8, tiny-8-e2, resnet-8, mobile-8" in text
    assert "training energy **measured**: 1 experiment(s) (gpu-run)" in text
    assert "- waiting: not finished (state: queued)" in text
    assert not list(out.glob(".report-*"))  # staging folder cleaned up


def test_command_line_overrides_the_stopping_rule(sweep, tmp_path):
    assert _report(tmp_path, "--min-points-per-kj", "off", "--min-points-per-ms", "off",
                   "--target-board-acc", "0.55") == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "**tiny-8-e2: stop optimising.**" in text and "goal is met" in text
    assert "minimum gain per extra kJ of training energy: off" in text


def test_plots_a_run_cannot_make_are_removed_not_left_stale(sweep, tmp_path):
    assert _report(tmp_path) == 0
    _sweep_json(tmp_path / "exp.json", [_exp("tiny-8", _data("tiny_cnn", 8, 1, 0.50, 2000, 1.0))])
    assert _report(tmp_path) == 0
    out = tmp_path / "out"
    assert (out / "learning_data_size.png").exists() and not (out / "learning_epochs.png").exists()
    assert "No curve against epochs (train.epochs)" in (out / "report.md").read_text()


def test_a_width_sweep_draws_the_model_size_curve(sweep, tmp_path):
    base = _data("tiny_cnn", 4, 1, 0.30, 1000, 1.0)
    wide = _data("tiny_cnn", 4, 1, 0.45, 2000, 2.0)
    for data, width in ((base, 16), (wide, 32)):
        data["params"]["params.yaml"]["data"]["model"]["width"] = width
    (tmp_path / "exp.json").write_text(json.dumps(
        [{"rev": "workspace", "name": None, "data": base, "experiments": None},
         {"rev": "f00d" * 10, "name": "main", "data": base, "experiments": [_exp("wide", wide)]}]))
    assert _report(tmp_path) == 0
    out = tmp_path / "out"
    text = (out / "report.md").read_text()
    assert "](learning_model_width.png)" in text
    assert matplotlib.image.imread(out / "learning_model_width.png").shape[0] > 100
    assert "No curve against epochs (train.epochs)" in text and not (out / "learning_epochs.png").exists()


def test_single_experiment_report_says_there_is_nothing_to_compare(tmp_path):
    (tmp_path / "params.yaml").write_text(PARAMS)
    _sweep_json(tmp_path / "exp.json", [])
    assert _report(tmp_path) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "only point on the training-energy front" in text
    assert "Only one experiment is on this front" in text


def test_bad_exp_json_is_a_one_line_user_error(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text(PARAMS)
    (tmp_path / "exp.json").write_text("{not json")
    assert _report(tmp_path) == 2
    err = capsys.readouterr().err
    assert "exp.json: not valid JSON" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "report.md").exists()


def test_bad_threshold_in_params_is_a_user_error(sweep, tmp_path, capsys):
    (tmp_path / "params.yaml").write_text(PARAMS.replace("latency_budget_ms: 50.0", "latency_budget_ms: -5"))
    assert _report(tmp_path) == 2
    assert "latency_budget_ms" in capsys.readouterr().err


TOY_STAGE = """\
import json, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))
acc = min(0.99, 0.2 * p["data"]["n_games"] / 4 + 0.05 * p["train"]["epochs"])
for stage, data in {"train": {"energy": {"fit_j": 500.0 * p["data"]["n_games"] * p["train"]["epochs"],
                                         "measured": 0}},
                    "evaluate": {"board_acc": acc, "latency": {"model_p50_ms": 2.0},
                                 "decoders": {"argmax": {"latency_p50_ms": 0.1}}}}.items():
    pathlib.Path("dvclive", stage).mkdir(parents=True, exist_ok=True)
    pathlib.Path("dvclive", stage, "metrics.json").write_text(json.dumps(data))
"""

TOY_DVC_YAML = """\
stages:
  run:
    cmd: python stage.py
    deps: [stage.py]
    params: [data.n_games, train.epochs]
    outs:
      - dvclive:
          cache: false
metrics:
  - dvclive/train/metrics.json
  - dvclive/evaluate/metrics.json
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_report_reads_real_dvc_exp_show_of_a_toy_project(tmp_path, monkeypatch):
    def sh(*cmd):
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "stage.py").write_text(TOY_STAGE)
    (tmp_path / "dvc.yaml").write_text(TOY_DVC_YAML)
    (tmp_path / "params.yaml").write_text("data:\n  n_games: 4\ntrain:\n  epochs: 1\nevaluate:\n  best_decoder: argmax\n" + PARAMS)
    sh("git", "init", "-q")
    sh(sys.executable, "-m", "dvc", "init", "-q")
    sh(sys.executable, "-m", "dvc", "repro", "-q")
    sh("git", "add", "-A")
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline")
    for n_games, epochs in ((8, 1), (4, 2)):
        sh(sys.executable, "-m", "dvc", "exp", "run", "-q", "-S", f"data.n_games={n_games}", "-S", f"train.epochs={epochs}")
    monkeypatch.chdir(tmp_path)
    assert main(["report"]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "3 finished experiment(s)" in text and "| 2 (estimated) |" in text
    assert "learning_data_size.png" in text and "learning_epochs.png" in text
