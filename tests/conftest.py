"""Shared fixtures: a real copy of this repository with the pipeline reproduced on the tiny profile."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
#: produced by the pipeline or by tools, never copied into a fresh test repository
NOT_COPIED = ("data/raw", "data/features", "models/classifier.ckpt", "dvclive", "plots", ".dvc/cache", ".dvc/tmp")


def run(cmd: list[str], cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a command with this interpreter's environment first on PATH (so `python` is ours)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("GITHUB_STEP_SUMMARY", None)
    result = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def compose_params(repo: Path, overrides: list[str], conf: Path | None = None) -> Path:
    """Write repo/params.yaml exactly as `dvc exp run -S ...` would (DVC's Hydra composition)."""
    from dvc.utils.hydra import compose_and_dump

    conf = conf or repo / "conf"
    compose_and_dump(repo / "params.yaml", str(conf.resolve()), None, "config", ".", overrides)
    return repo / "params.yaml"


def copy_repo(dest: Path) -> Path:
    """A fresh git repository holding this checkout's tracked and untracked (not ignored) files."""
    files = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], REPO).stdout.split("\0")
    for rel in filter(None, files):
        if rel.startswith(NOT_COPIED) or not (REPO / rel).is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    run(["git", "init", "-q"], dest)
    run(["git", "config", "user.email", "tests@chessrec.invalid"], dest)
    run(["git", "config", "user.name", "chessrec tests"], dest)
    return dest


def commit_all(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo)


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Path:
    """This repository, copied, switched to the tiny profile, reproduced with `dvc repro`, committed.

    Tests that change it must work on their own copy (see `tiny_repo_copy`).
    """
    repo = copy_repo(tmp_path_factory.mktemp("tiny") / "repo")
    compose_params(repo, ["profile=tiny"])
    commit_all(repo, "tiny profile")
    run(["dvc", "repro"], repo)
    commit_all(repo, "reproduced")
    return repo


@pytest.fixture
def tiny_repo_copy(tiny_repo, tmp_path) -> Path:
    """A private copy of the reproduced tiny repository (with its DVC cache), free to change."""
    dest = tmp_path / "repo"
    shutil.copytree(tiny_repo, dest, symlinks=True)
    return dest
