"""Interrupted runs: a stage killed with SIGKILL halfway leaves nothing DVC would take as complete.

Each test times one full forced rerun of a stage of the reproduced tiny repository
(`dvc repro --force --single-item`), reruns it again and freezes the stage's process (SIGSTOP)
halfway through, checks that it was indeed still running, then SIGKILLs DVC and the stage
together, as a power cut or the OOM killer would: no handler, no clean-up. The next `dvc status` must name the stage as changed, and the
next `dvc repro` must finish (rerunning the stage, or restoring its outputs from DVC's run cache)
and give back the committed output hashes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import run

pytestmark = pytest.mark.slow

STAGES = ("prepare", "featurize", "train", "evaluate")
#: outputs whose bytes depend on the machine's speed (latencies, energy, power plots)
TIMED_OUTS = ("dvclive/train", "dvclive/evaluate")


def _stage_process(dvc: subprocess.Popen, stage: str) -> psutil.Process | None:
    module = f"chessrec.stages.{stage}"
    try:
        children = psutil.Process(dvc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    return next((c for c in children if module in " ".join(_cmdline(c))), None)


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []


def _alive(process: psutil.Process) -> bool:
    """Running and not yet a zombie; a process that ends between the two questions is not alive."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _stopped(process: psutil.Process, wait_s: float = 5.0) -> bool:
    """Whether SIGSTOP has taken hold (it is delivered asynchronously) rather than the process ending."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            status = process.status()
        except psutil.NoSuchProcess:
            return False
        if status == psutil.STATUS_STOPPED:
            return True
        if status == psutil.STATUS_ZOMBIE:
            return False
        time.sleep(0.01)
    return False


def _start(repo: Path, stage: str) -> subprocess.Popen:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.Popen(["dvc", "repro", "--force", "--single-item", stage], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _wait_for_stage(dvc: subprocess.Popen, stage: str, timeout_s: float) -> psutil.Process:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        process = _stage_process(dvc, stage)
        if process is not None:
            return process
        assert dvc.poll() is None, f"dvc repro ended ({dvc.returncode}) before {stage} started"
        time.sleep(0.01)
    pytest.fail(f"{stage} did not start within {timeout_s:.0f} s")


def _stage_seconds(repo: Path, stage: str, timeout_s: float = 240.0) -> float:
    """How long the stage's process lives in a full forced run (the outputs it writes equal the committed)."""
    dvc = _start(repo, stage)
    process = _wait_for_stage(dvc, stage, timeout_s)
    started = time.monotonic()
    while _alive(process):
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    assert dvc.wait(timeout=timeout_s) == 0, f"dvc repro of {stage} failed"
    return elapsed


def _kill_mid_stage(repo: Path, stage: str, after_s: float, timeout_s: float = 240.0) -> None:
    """Start the stage under DVC, freeze it ``after_s`` into its run, SIGKILL DVC and the stage together."""
    dvc = _start(repo, stage)
    try:
        process = _wait_for_stage(dvc, stage, timeout_s)
        time.sleep(max(after_s - (time.time() - process.create_time()), 0.0))
        try:
            process.suspend()
        except psutil.NoSuchProcess:
            pytest.fail(f"{stage} ended before it could be killed")
        assert _stopped(process), f"{stage} ended before it could be killed"
    finally:
        os.killpg(dvc.pid, signal.SIGKILL)
        dvc.wait()


def _outs(repo: Path) -> dict[str, dict[str, list]]:
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {name: {o["path"]: o for o in stage.get("outs", []) if not o["path"].startswith(TIMED_OUTS)}
            for name, stage in stages.items()}


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_killed_halfway_is_rerun_and_reproduces_the_committed_outputs(tiny_repo_copy, stage):
    committed = _outs(tiny_repo_copy)
    halfway = _stage_seconds(tiny_repo_copy, stage) / 2
    assert _outs(tiny_repo_copy) == committed  # an uninterrupted rerun writes the committed outputs
    lock_before = (tiny_repo_copy / "dvc.lock").read_bytes()  # with this rerun's timing figures

    _kill_mid_stage(tiny_repo_copy, stage, after_s=halfway)

    assert (tiny_repo_copy / "dvc.lock").read_bytes() == lock_before, "a killed run must not touch dvc.lock"
    status = run(["dvc", "status", stage], tiny_repo_copy).stdout
    # DVC removed the outputs before the run: half of them, or none, is what it must see now
    assert f"{stage}:" in status and "changed outs" in status, status

    repro = run(["dvc", "repro"], tiny_repo_copy).stdout
    # rerun, or restored whole from DVC's run cache (same deps and params as a run that completed)
    assert f"Running stage '{stage}'" in repro or f"Stage '{stage}' is cached - skipping run" in repro, repro
    assert _outs(tiny_repo_copy) == committed
    assert "up to date" in run(["dvc", "status"], tiny_repo_copy).stdout
