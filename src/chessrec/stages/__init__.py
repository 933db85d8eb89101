"""Pipeline stage entry points (``python -m chessrec.stages.<name>``), each a few lines long.

``dvc.yaml`` runs them; ``chessrec stage NAME`` runs one by hand.  Every stage validates
``params.yaml`` into typed config before doing any work.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable

from chessrec.errors import USER_ERROR_EXIT, UserError
from chessrec.quiet import quiet_library_noise

STAGES = ("prepare", "featurize", "train", "evaluate", "export", "broadcast", "adapt")


def register(subparsers) -> None:
    parser = subparsers.add_parser("stage", help="run one pipeline stage by hand (dvc repro runs them all)")
    parser.add_argument("name", choices=STAGES)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.set_defaults(func=lambda args: importlib.import_module(f"chessrec.stages.{args.name}").main(args.params))


def run_stage(main: Callable[[], int], name: str) -> None:
    """Run a stage as a script: a user mistake exits with one line, not a traceback."""
    quiet_library_noise()
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
