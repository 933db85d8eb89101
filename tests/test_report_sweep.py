"""Acceptance: a real sweep of six experiments on the tiny profile, then `chessrec report` on `dvc exp show`.

The repository is copied into a temporary folder (its tracked and unignored files, no data or
models) and committed there as the baseline. The documented grid command
(`dvc exp run --queue -S 'model=a,b,c' -S 'data.n_games=x,y'`) is checked to queue six
experiments; they are then run with `dvc exp run` one after another in the workspace rather than
by `dvc queue start`, because each queued experiment runs in a fresh copy and repeats every
stage (the pipeline's uncached plot and dvclive outputs keep DVC's run cache out), while the
workspace reruns only the stages whose params changed: prepare and featurize twice, not six
times. The report is then written from the real `dvc exp show --json` output.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from chessrec.cli import main

REPO = Path(__file__).resolve().parents[1]
#: pipeline outputs and local state that must not travel into the copy
LEFT_BEHIND = ("data/raw", "data/features", "data/adapt_set", "models/", "dvclive/", "report/", "plots/", ".dvc/cache/",
               ".dvc/tmp/")  # outputs; git-tracked inputs (data/sets/) travel as a clone has them
N_GAMES = (2, 4)
MODELS = ("tiny_cnn", "mobilenet", "resnet18")
#: shrink the tiny profile further: narrow networks, the cheapest decoder only
QUICK = ("profile=tiny", "model.width=8", "evaluate.decoders=[argmax]", "evaluate.best_decoder=argmax")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (REPO / "dvc.yaml").exists() or not (REPO / "src/chessrec/stages/evaluate.py").exists(),
                       reason="needs the DVC pipeline (dvc.yaml and the evaluate stage)"),
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
]


def _copy_repo(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if rel.startswith(LEFT_BEHIND) or not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)


def _sets(*overrides: str) -> list[str]:
    return [arg for o in overrides for arg in ("-S", o)]


def test_sweep_of_six_experiments_gives_a_report_from_real_dvc_exp_show(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    _copy_repo(repo)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}

    def run(*args: str, tool: tuple[str, ...] = (sys.executable, "-m", "dvc")) -> str:
        done = subprocess.run([*tool, *args], cwd=repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    run("init", "-q", tool=("git",))
    run("add", "-A", tool=("git",))
    run("commit", "-qm", "baseline", tool=("git",))

    # the documented grid syntax queues one experiment per combination
    run("exp", "run", "--queue", *_sets(*QUICK, f"model={','.join(MODELS)}", f"data.n_games={','.join(map(str, N_GAMES))}"))
    assert run("queue", "status").count("Queued") == len(MODELS) * len(N_GAMES)
    run("queue", "remove", "--queued")

    for n_games, model in itertools.product(N_GAMES, MODELS):
        run("exp", "run", "-q", "-n", f"{model}-g{n_games}", *_sets(*QUICK, f"model={model}", f"data.n_games={n_games}"))

    monkeypatch.chdir(repo)
    monkeypatch.setenv("PATH", env["PATH"])
    # tiny models are far from any accuracy target; switch the budget off to exercise the front walk
    assert main(["report", "--out", "report", "--latency-budget-ms", "off"]) == 0
    text = (repo / "report" / "report.md").read_text()

    assert f"{len(MODELS) * len(N_GAMES)} finished experiment(s)" in text
    for n_games, model in itertools.product(N_GAMES, MODELS):
        assert f"| {model}-g{n_games} | {n_games} | — | {model} |" in text  # swept params are table columns
        assert f"| {model}-g{n_games} · onnx_int8 | {n_games} | onnx_int8 | {model} |" in text  # and its artefacts
    assert "optimising.**" in text  # a recommendation with its verdict
    assert "- training energy **" in text  # each energy figure is labelled measured or estimated
    for png in ("pareto_energy.png", "pareto_latency.png", "learning_data_size.png"):
        assert f"]({png})" in text and matplotlib.image.imread(repo / "report" / png).size > 0
    assert "No curve against epochs (train.epochs)" in text
