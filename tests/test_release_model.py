"""`scripts/release_model.py`: a finished run's model shipped with its provenance, alone or as an ensemble
that the model released before can join (real runs of the tiny profile, real files)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import torch
import yaml

from chessrec.errors import USER_ERROR_EXIT
from chessrec.evaluation import run_evaluation
from chessrec.inference.loader import load_model

from conftest import REPO, run

SCRIPT = REPO / "scripts" / "release_model.py"


def _release(*args: str, cwd: Path, check: bool = True):
    return run([sys.executable, str(SCRIPT), *args], cwd, check=check)


def _another_run(tiny_repo: Path, dest: Path, seed: int, data: dict | None = None) -> Path:
    """A second finished run: the tiny run's files with other weights and another seed in its params."""
    shutil.copytree(tiny_repo, dest, symlinks=True)
    model = dest / "models/classifier.ckpt"
    checkpoint = torch.load(model, map_location="cpu", weights_only=True)
    generator = torch.Generator().manual_seed(seed)
    checkpoint["state_dict"] = {key: value + 0.01 * torch.randn(value.shape, generator=generator)
                                if value.is_floating_point() else value for key, value in checkpoint["state_dict"].items()}
    model.unlink()  # a DVC output may be a link into the cache: never write through it
    torch.save(checkpoint, model)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["seed"] = seed
    params["data"].update(data or {})
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def _files(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.iterdir()) if path.is_file()}


def test_a_new_run_joins_the_released_model_and_every_member_keeps_its_record(tiny_repo, tmp_path):
    out = tmp_path / "released"
    _release("--repo", str(tiny_repo), "--out", str(out), cwd=tmp_path)
    single = json.loads((out / "classifier.json").read_text())
    assert single["sha256"] == hashlib.sha256((out / "classifier.ckpt").read_bytes()).hexdigest()
    assert single["params"]["seed"] == 7 and "members" not in single

    second = _another_run(tiny_repo, tmp_path / "second", seed=8)
    printed = _release("--repo", str(second), "--keep-released", "--out", str(out), cwd=tmp_path).stdout
    assert "released" in printed
    record = json.loads((out / "classifier.json").read_text())
    assert record["ensemble_of"] == 2 and record["sha256"] == hashlib.sha256((out / "classifier.ckpt").read_bytes()).hexdigest()
    assert [member["params"]["seed"] for member in record["members"]] == [8, 7]
    assert record["members"][1] == single  # the released run's own record, unchanged
    assert "seed 8" in record["test_split"]  # scored on the new run's test boards, which neither member trained on
    assert 0 < record["test_metrics"]["square_acc_low"] <= record["test_metrics"]["square_acc"] <= 1
    assert len(load_model(out / "classifier.ckpt").members) == 2

    # a third run joins the released ensemble: its members and their records, in the file's order
    third = _another_run(tiny_repo, tmp_path / "third", seed=9)
    _release("--repo", str(third), "--keep-released", "--out", str(out), cwd=tmp_path)
    grown = json.loads((out / "classifier.json").read_text())
    assert [member["params"]["seed"] for member in grown["members"]] == [9, 8, 7]
    assert grown["members"][1:] == record["members"]
    assert len(load_model(out / "classifier.ckpt").members) == 3
    weights = torch.load(out / "classifier.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    for index, run_dir in enumerate((third, second, tiny_repo)):
        own = torch.load(run_dir / "models/classifier.ckpt", map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.equal(weights[f"members.{index}.{key}"], value) for key, value in own.items()), run_dir.name

    # a fourth run joins only members 0 and 2 of that release (the others leave), records and weights alike
    fourth = _another_run(tiny_repo, tmp_path / "fourth", seed=10)
    _release("--repo", str(fourth), "--keep-released", "0", "2", "--out", str(out), cwd=tmp_path)
    chosen = json.loads((out / "classifier.json").read_text())
    assert [member["params"]["seed"] for member in chosen["members"]] == [10, 9, 7]
    assert chosen["members"][1:] == [grown["members"][0], grown["members"][2]]
    chosen_weights = torch.load(out / "classifier.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    for index, old_index in ((1, 0), (2, 2)):
        prefix = f"members.{old_index}."
        assert all(torch.equal(chosen_weights[f"members.{index}.{key[len(prefix):]}"], value)
                   for key, value in weights.items() if key.startswith(prefix))
    assert not [path.name for path in out.iterdir() if path.name.startswith(".release-")]


def test_a_release_that_would_score_a_member_on_its_own_training_boards_is_refused_and_nothing_changes(
        tiny_repo, tmp_path):
    out = tmp_path / "released"
    _release("--repo", str(tiny_repo), "--out", str(out), cwd=tmp_path)
    before = _files(out)
    # the same run again: an ensemble of a model with itself
    same = _release("--repo", str(tiny_repo), "--keep-released", "--out", str(out), cwd=tmp_path, check=False)
    # another run of the released run's seed: its training boards may be this run's test boards
    other_data = _another_run(tiny_repo, tmp_path / "other-data", seed=7, data={"n_random": 3})
    shared_seed = _release("--repo", str(other_data), "--keep-released", "--out", str(out), cwd=tmp_path, check=False)
    # a record that is not the released file's
    (tmp_path / "stale").mkdir()
    shutil.copy(out / "classifier.ckpt", tmp_path / "stale" / "classifier.ckpt")
    (tmp_path / "stale" / "classifier.json").write_text("[1, 2]")
    stale = _release("--repo", str(other_data), "--keep-released", "--out", str(tmp_path / "stale"), cwd=tmp_path,
                     check=False)
    # nothing released yet in an empty folder
    nothing = _release("--repo", str(tiny_repo), "--keep-released", "--out", str(tmp_path / "empty"), cwd=tmp_path,
                       check=False)
    # a run whose model file was cut off, released in float16 (the only release that reads the file)
    cut = _another_run(tiny_repo, tmp_path / "cut", seed=10)
    (cut / "models/classifier.ckpt").write_bytes((cut / "models/classifier.ckpt").read_bytes()[:5000])
    truncated = _release("--repo", str(cut), "--float16", "--out", str(out), cwd=tmp_path, check=False)
    no_such_member = _release("--repo", str(cut), "--keep-released", "1", "--out", str(out), cwd=tmp_path, check=False)
    # a sound ensemble whose file is over the size cap (refused before it is scored), and a cap that is no size
    sound = _another_run(tiny_repo, tmp_path / "sound", seed=8)
    too_big = _release("--repo", str(sound), "--keep-released", "--max-mb", "0.001", "--out", str(out), cwd=tmp_path,
                       check=False)
    no_cap = _release("--repo", str(sound), "--max-mb", "0", "--out", str(out), cwd=tmp_path, check=False)
    for result, says in ((same, "same checkpoint"), (shared_seed, "shares the test run's seed"),
                         (stale, "not the record of classifier.ckpt"), (nothing, "no released model to keep"),
                         (truncated, "not a chessrec checkpoint"), (no_such_member, "has members 0-0"),
                         (too_big, "over --max-mb 0.001: release --float16 or fewer members"),
                         (no_cap, "--max-mb 0.0: must be a positive")):
        assert result.returncode == USER_ERROR_EXIT, result.stderr
        assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert _files(out) == before


def test_a_float16_release_is_half_the_file_scored_as_stored_and_reads_like_float32(tiny_repo, tmp_path):
    full, half = tmp_path / "float32", tmp_path / "float16"
    _release("--repo", str(tiny_repo), "--out", str(full), cwd=tmp_path)
    _release("--repo", str(tiny_repo), "--float16", "--out", str(half), cwd=tmp_path)
    full_record, half_record = (json.loads((out / "classifier.json").read_text()) for out in (full, half))
    assert (half_record["weights"], full_record["weights"]) == ("float16", "float32")
    assert half_record["sha256"] == hashlib.sha256((half / "classifier.ckpt").read_bytes()).hexdigest()
    assert half_record["source_sha256"] == full_record["sha256"]  # the run's own file, as released in float32
    stored = torch.load(half / "classifier.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    floating = [tensor for tensor in stored.values() if tensor.is_floating_point()]
    assert floating and all(tensor.dtype == torch.float16 for tensor in floating)
    assert half_record["size_bytes"] < 0.75 * full_record["size_bytes"]
    # the record's metrics are the stored float16 weights' own, scored by the evaluate stage's code
    evaluate = full_record["params"]["evaluate"]
    scored = run_evaluation(tiny_repo / "data/features/test", half / "classifier.ckpt", tmp_path / "scored",
                            evaluate["decoders"], evaluate["best_decoder"], evaluate["topk"], evaluate["strict"],
                            mirror_average=evaluate["mirror_average"])
    assert half_record["test_metrics"] == {key: scored[key] for key in half_record["test_metrics"]}
    assert {key: value for key, value in half_record.items() if key not in (
            "weights", "test_metrics", "decoders", "sha256", "size_bytes", "source_sha256")} == {
            key: value for key, value in full_record.items() if key not in (
            "weights", "test_metrics", "decoders", "sha256", "size_bytes")}
    # the loader widens every weight and buffer: the model runs in float32 like the one released in float32
    networks = _torch_networks(load_model(half / "classifier.ckpt"))
    assert networks and all(t.dtype in (torch.float32, torch.int64) for network in networks
                            for t in network.state_dict().values())
    # a run joining the float16 release without --float16 makes an ensemble stored both ways, and says so
    second = _another_run(tiny_repo, tmp_path / "second", seed=8)
    _release("--repo", str(second), "--keep-released", "--out", str(half), cwd=tmp_path)
    assert json.loads((half / "classifier.json").read_text())["weights"] == "mixed"
    assert not [path.name for path in half.iterdir() if path.name.startswith(".release-")]


def _torch_networks(model) -> list[torch.nn.Module]:
    """The torch networks inside a loaded model (one network, a cascade's two, an ensemble's members')."""
    if hasattr(model, "network"):
        return [model.network]
    parts = getattr(model, "members", None) or (model.occupancy, model.piece)
    return [network for part in parts for network in _torch_networks(part)]
