"""Contracts the code keeps with the pipeline and the user, checked rather than kept by hand.

- Each stage's code deps in ``dvc.yaml`` are exactly the package modules it can import (the
  static import closure of its entry point, function-level imports included): a missing module
  is a reproducibility hole (changing it would rerun nothing), an extra one reruns for nothing.
- Config choices come from the registries, and each bound lives in one place.
- A user mistake exits with the one documented code.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chessrec import registry
from chessrec.config import FeaturesConfig, Params
from chessrec.errors import USER_ERROR_EXIT

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def module_file(name: str) -> Path | None:
    """The source file of a chessrec module (a package's ``__init__.py``), None if it is no module."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """The chessrec modules a file imports anywhere in it, with the packages they sit in."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] != "chessrec":
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                if module_file(".".join(parts[:i])) is not None:
                    found.add(".".join(parts[:i]))
    return found


def import_closure(entry: str) -> set[Path]:
    """Source files of every chessrec module that running ``python -m entry`` may import."""
    todo, seen = [entry], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += sorted(imported_modules(module_file(name)) - seen)
    parts = entry.split(".")
    seen |= {".".join(parts[:i]) for i in range(1, len(parts))}
    return {module_file(name).relative_to(ROOT) for name in seen}


def code_deps(stage: dict) -> set[Path]:
    """The stage's deps under ``src/``, folders expanded to their Python files."""
    files: set[Path] = set()
    for dep in stage.get("deps", []):
        path = ROOT / dep
        if not dep.startswith("src/"):
            continue
        files |= {p.relative_to(ROOT) for p in path.rglob("*.py")} if path.is_dir() else {Path(dep)}
    return files


def deps_mismatch(stage: dict) -> tuple[set[Path], set[Path]]:
    """(imported but not a dep, a dep but never imported) for a stage of dvc.yaml."""
    entry = stage["cmd"].split("python -m ", 1)[1].split()[0]
    closure, deps = import_closure(entry), code_deps(stage)
    return closure - deps, deps - closure


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_are_exactly_the_modules_it_imports(name):
    missing, extra = deps_mismatch(STAGES[name])
    assert not missing, f"stage {name}: add to deps in dvc.yaml: {sorted(map(str, missing))}"
    assert not extra, f"stage {name}: deps it never imports, remove from dvc.yaml: {sorted(map(str, extra))}"


def test_import_closure_check_catches_a_missing_dep():
    stage = dict(STAGES["evaluate"])
    stage["deps"] = [d for d in stage["deps"] if d != "src/chessrec/errors.py"]
    missing, _ = deps_mismatch(stage)
    assert missing == {Path("src/chessrec/errors.py")}


def test_import_closure_follows_imports_inside_functions():
    # the evaluate stage imports the evaluation suite only inside main(), after validating params
    assert Path("src/chessrec/evaluation.py") in import_closure("chessrec.stages.evaluate")
    assert Path("src/chessrec/training.py") not in import_closure("chessrec.stages.evaluate")


def test_config_choices_come_from_the_registries():
    from chessrec.datasets import LOADERS
    from chessrec.decoding import DECODER_NAMES, DECODERS, SEQUENCE_DECODERS
    from chessrec.models import ARCHITECTURES

    def choices(model, field):
        return set(model.model_fields[field].annotation.__args__)

    params = Params.model_fields
    assert choices(params["model"].annotation, "name") == set(ARCHITECTURES) == set(registry.ARCHITECTURES)
    assert choices(params["data"].annotation, "source") == set(LOADERS)
    assert set(params["evaluate"].annotation().decoders) == set(DECODER_NAMES) == {*DECODERS, *SEQUENCE_DECODERS}
    assert choices(FeaturesConfig, "crop") == set(registry.CROP_KINDS)


def test_crop_size_has_one_bound_in_config_and_crop_spec():
    from pydantic import ValidationError

    from chessrec.errors import UserError
    from chessrec.geometry import CROP_SIZE_MAX, CROP_SIZE_MIN, CropSpec

    for size in (CROP_SIZE_MIN, CROP_SIZE_MAX):
        assert CropSpec(size=size).size == FeaturesConfig(size=size).size == size
    for size in (CROP_SIZE_MIN - 1, CROP_SIZE_MAX + 1):
        with pytest.raises(UserError):
            CropSpec(size=size)
        with pytest.raises(ValidationError):
            FeaturesConfig(size=size)


def test_a_stage_stops_on_a_user_error_with_the_documented_exit_code(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  lr: -1\n")
    run = subprocess.run([sys.executable, "-m", "chessrec.stages.train"], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert run.returncode == USER_ERROR_EXIT == 2
    assert run.stderr.strip().count("\n") == 0 and "train.lr" in run.stderr
