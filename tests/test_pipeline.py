"""The reproducible pipeline as a user meets it: real DVC, real Lightning, real files (issue 2)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, commit_all, compose_params, copy_repo, run


def test_committed_params_equal_composition_of_conf(tmp_path):
    composed = compose_params(tmp_path, [], conf=REPO / "conf")
    assert yaml.safe_load(composed.read_text()) == yaml.safe_load((REPO / "params.yaml").read_text())


def test_dvc_hydra_composition_is_enabled_for_exp_run():
    config = (REPO / ".dvc" / "config").read_text()
    assert "[hydra]" in config and "enabled = true" in config


@pytest.mark.parametrize("override, key, shown", [
    ("model.name=vgg", "model.name", "'tiny_cnn', 'strided_cnn', 'resnet18' or 'mobilenet'"),
    ("train.lr=-0.1", "train.lr", "greater than 0"),
    ("evaluate.promotion_cost=-1", "evaluate.promotion_cost", "greater than or equal to 0"),
    ("features.footprint=oval", "features.footprint", "'square' or 'disc'"),
    ("+train.momentum=0.9", "train.momentum", "valid keys here: epochs"),
])
def test_invalid_parameter_fails_before_any_work_with_one_line(tmp_path, override, key, shown):
    compose_params(tmp_path, ["profile=tiny", override], conf=REPO / "conf")
    result = subprocess.run([sys.executable, "-m", "chessrec.stages.prepare"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert key in message and shown in message
    assert not (tmp_path / "data").exists(), "nothing may be written before params are valid"


def test_unknown_model_group_is_refused_by_dvc_with_the_choices(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    commit_all(repo, "baseline")
    result = run(["dvc", "exp", "run", "-S", "model=vgg"], repo, check=False)
    assert result.returncode != 0
    assert "vgg" in result.stderr and "mobilenet" in result.stderr


@pytest.mark.slow
def test_repro_produces_model_metrics_and_plots(tiny_repo):
    metrics = json.loads((tiny_repo / "dvclive/evaluate/metrics.json").read_text())
    for key in ("square_acc", "board_acc", "errors_per_board"):
        assert 0 <= metrics[key] <= 64
    assert set(metrics["decoders"]) == {"argmax", "greedy", "constrained", "topk_legal", "continuity", "beam"}
    train = json.loads((tiny_repo / "dvclive/train/metrics.json").read_text())
    assert {"loss", "acc"} <= set(train["train"]) and {"loss", "acc"} <= set(train["val"])
    assert (tiny_repo / "models/classifier.ckpt").stat().st_size > 10_000
    for plot in ("plots/samples.jpg", "plots/crops.png", "dvclive/evaluate/plots/sklearn/confusion_matrix.json"):
        assert (tiny_repo / plot).is_file(), plot
    shown = run(["dvc", "plots", "show", "--json"], tiny_repo).stdout
    assert "confusion_matrix" in shown


@pytest.mark.slow
def test_deterministic_stages_record_the_instruction_set_their_bytes_were_made_on(tiny_repo):
    from chessrec.reproducibility import instruction_set

    for stage in ("prepare", "featurize"):
        record = tiny_repo / "reproduction" / f"{stage}.json"
        assert json.loads(record.read_text()) == instruction_set(), stage
        ignored = run(["git", "check-ignore", "-q", f"reproduction/{stage}.json"], tiny_repo, check=False)
        assert ignored.returncode == 1, f"{stage}'s record must be committed beside dvc.lock, not ignored"
        lock = yaml.safe_load((tiny_repo / "dvc.lock").read_text())["stages"][stage]["outs"]
        md5 = next(out["md5"] for out in lock if out["path"] == f"reproduction/{stage}.json")
        assert md5 == hashlib.md5(record.read_bytes()).hexdigest(), f"dvc.lock must hash {stage}'s record"


@pytest.mark.slow
def test_second_repro_runs_nothing(tiny_repo_copy):
    out = run(["dvc", "repro"], tiny_repo_copy).stdout
    assert "Running stage" not in out
    assert "up to date" in out


@pytest.mark.slow
def test_changing_an_evaluation_parameter_reruns_only_evaluate(tiny_repo_copy):
    params = yaml.safe_load((tiny_repo_copy / "params.yaml").read_text())
    params["evaluate"]["topk"] = 8
    (tiny_repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], tiny_repo_copy).stdout
    assert "Running stage 'evaluate'" in out
    for stage in ("prepare", "featurize", "train"):
        assert f"Running stage '{stage}'" not in out


@pytest.mark.slow
def test_prepare_and_featurize_are_byte_identical_when_rerun(tiny_repo_copy):
    before = (tiny_repo_copy / "dvc.lock").read_text()
    run(["dvc", "repro", "--force", "--single-item", "prepare"], tiny_repo_copy)
    run(["dvc", "repro", "--force", "--single-item", "featurize"], tiny_repo_copy)
    after = yaml.safe_load((tiny_repo_copy / "dvc.lock").read_text())["stages"]
    committed = yaml.safe_load(before)["stages"]
    for stage in ("prepare", "featurize"):
        assert after[stage]["outs"] == committed[stage]["outs"], stage


@pytest.mark.slow
def test_exp_run_with_another_architecture_is_listed_next_to_the_baseline(tiny_repo_copy):
    # with Hydra enabled, DVC recomposes params.yaml from conf/: name the profile too
    run(["dvc", "exp", "run", "-S", "profile=tiny", "-S", "model=mobilenet", "-S", "model.width=8"], tiny_repo_copy)
    rows = json.loads(run(["dvc", "exp", "show", "--json"], tiny_repo_copy).stdout)
    baseline = next(r for r in rows if r.get("rev") != "workspace")
    experiments = baseline.get("experiments") or []
    assert experiments, "the experiment must be listed under the baseline"
    exp_data = experiments[0]["revs"][0]["data"]
    assert exp_data["params"]["params.yaml"]["data"]["model"]["name"] == "mobilenet"
    assert "board_acc" in exp_data["metrics"]["dvclive/evaluate/metrics.json"]["data"]
    base_data = baseline["data"]
    assert base_data["params"]["params.yaml"]["data"]["model"]["name"] == "strided_cnn"
    assert "square_acc" in base_data["metrics"]["dvclive/evaluate/metrics.json"]["data"]


@pytest.mark.slow
def test_train_runs_under_ddp_on_two_cpu_processes(tiny_repo_copy):
    params = yaml.safe_load((tiny_repo_copy / "params.yaml").read_text())
    params["trainer"].update(accelerator="cpu", devices=2, strategy="ddp")
    (tiny_repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (tiny_repo_copy / "models/classifier.ckpt").unlink()
    result = run([sys.executable, "-m", "chessrec.stages.train"], tiny_repo_copy)
    assert result.stdout.count("train: strided_cnn") == 1, "only rank zero reports"
    assert (tiny_repo_copy / "models/classifier.ckpt").is_file()
    metrics = json.loads((tiny_repo_copy / "dvclive/train/metrics.json").read_text())
    assert "rank1" in metrics["energy"]["methods"], "each rank measures its own devices"


def test_stages_run_the_code_of_the_checkout_dvc_runs_them_in(tmp_path):
    """A queued experiment runs in a copy of the repository: its stages must import that copy's code,
    not the package installed in editable mode from the workspace (which may have changed since)."""
    repo = copy_repo(tmp_path / "repo")
    (repo / "src/chessrec/stages/prepare.py").write_text('raise SystemExit("prepare of the copy ran")\n')
    commit_all(repo, "baseline with a marked prepare stage")
    result = run(["dvc", "repro", "prepare"], repo, check=False)
    assert result.returncode != 0
    assert "prepare of the copy ran" in result.stdout + result.stderr


def _conf_and_params(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


COMPOSE = [sys.executable, str(REPO / "scripts" / "compose_params.py"), "--repo", "."]


def test_repro_script_stops_naming_the_key_when_conf_was_edited_but_params_yaml_was_not(tmp_path):
    repo = _conf_and_params(tmp_path)
    committed = (repo / "params.yaml").read_bytes()
    assert run(COMPOSE + ["--check"], repo).returncode == 0
    config = repo / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("\nseed: 7\n", "\nseed: 8\n"))

    result = run(COMPOSE + ["--check"], repo, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "seed: conf/ gives 8, params.yaml has 7" in result.stderr
    assert (repo / "params.yaml").read_bytes() == committed  # a check writes nothing

    run(COMPOSE, repo)
    assert yaml.safe_load((repo / "params.yaml").read_text())["seed"] == 8
    assert run(COMPOSE + ["--check"], repo).returncode == 0


def test_composing_an_unchanged_conf_leaves_the_committed_params_yaml_byte_for_byte(tmp_path):
    repo = _conf_and_params(tmp_path)
    before = (repo / "params.yaml").stat().st_mtime_ns
    assert "unchanged" in run(COMPOSE, repo).stdout
    assert (repo / "params.yaml").stat().st_mtime_ns == before


def test_a_conf_that_cannot_compose_is_refused_in_one_line_and_params_yaml_is_kept(tmp_path):
    repo = _conf_and_params(tmp_path)
    committed = (repo / "params.yaml").read_bytes()
    config = repo / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("  - profile: default", "  - profile: nosuch"))
    result = run(COMPOSE, repo, check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "conf: cannot compose params.yaml" in result.stderr and "nosuch" in result.stderr
    assert (repo / "params.yaml").read_bytes() == committed
