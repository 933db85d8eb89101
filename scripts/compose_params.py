"""Compose ``params.yaml`` from ``conf/`` exactly as ``dvc exp run`` does, for a plain ``dvc repro``.

DVC composes the Hydra tree only in ``dvc exp run``; ``dvc repro`` reads ``params.yaml`` as it
stands, so an edit of ``conf/`` would silently not run. ``scripts/repro.sh`` runs ``--check``
first: it stops, naming the first key where the two disagree, instead of running params nobody
chose. Rewriting ``params.yaml`` there is not safe either: after ``dvc exp apply`` it holds an
experiment's ``-S`` overrides that ``conf/`` does not. A clean checkout composes to the
committed file byte for byte (``tests/test_pipeline.py``).

    python scripts/compose_params.py [--repo .] [--check]
    python scripts/compose_params.py --out FILE profile=full trainer.accelerator=gpu   # as `dvc exp run -S ...`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from chessrec.errors import USER_ERROR_EXIT
from chessrec.fileio import write_atomic


def composed_text(repo: Path, overrides: list[str] | None = None) -> bytes:
    """``params.yaml`` as DVC composes it from ``repo/conf`` with ``dvc exp run -S`` ``overrides``
    (Hydra errors propagate)."""
    from dvc.utils.hydra import compose_and_dump

    with tempfile.TemporaryDirectory() as tmp:
        composed = Path(tmp) / "params.yaml"
        compose_and_dump(composed, str((repo / "conf").resolve()), None, "config", ".", list(overrides or []))
        return composed.read_bytes()


def first_difference(ours: object, theirs: object, key: str = "") -> str | None:
    """The dotted key of the first value that differs between two parsed YAML trees, or None."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for name in sorted(set(ours) | set(theirs), key=str):
            found = first_difference(ours.get(name), theirs.get(name), f"{key}.{name}" if key else str(name))
            if found:
                return found
        return None
    return None if ours == theirs else f"{key}: conf/ gives {ours!r}, params.yaml has {theirs!r}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--check", action="store_true",
                        help="only check that params.yaml is what conf/ composes to (exit 2 naming the first difference)")
    parser.add_argument("--out", type=Path, help="write (or check) this file instead of the repository's params.yaml")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as `dvc exp run -S` takes them")
    args = parser.parse_args(argv)
    if not (args.repo / "conf" / "config.yaml").is_file():
        print(f"error: {args.repo / 'conf' / 'config.yaml'}: no Hydra config to compose params.yaml from", file=sys.stderr)
        return USER_ERROR_EXIT
    target = args.out or args.repo / "params.yaml"
    try:
        text = composed_text(args.repo, args.overrides)
    except Exception as exc:  # Hydra's errors (missing group option, bad YAML) are the user's conf/
        detail = " ".join(str(exc).split())
        print(f"error: {args.repo / 'conf'}: cannot compose params.yaml: {detail}", file=sys.stderr)
        return USER_ERROR_EXIT
    current = target.read_bytes() if target.is_file() else None
    if args.check:
        difference = "params.yaml is missing" if current is None else first_difference(
            yaml.safe_load(text), yaml.safe_load(current))
        if difference:
            print(f"error: {target} is not what conf/ composes to ({difference}): run "
                  f"`python scripts/compose_params.py` to run conf/, or `dvc repro` to run params.yaml as it is",
                  file=sys.stderr)
            return USER_ERROR_EXIT
        print(f"{target}: what conf/ composes to")
        return 0
    if current != text:
        write_atomic(target, text)
    print(f"{target}: composed from conf/ ({'unchanged' if current == text else 'rewritten'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
