"""The ``chessrec`` command: a thin dispatcher over sub-commands that live beside their domain.

Each sub-command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from chessrec.errors import USER_ERROR_EXIT, UserError
from chessrec.quiet import quiet_library_noise

#: sub-command modules, imported lazily so ``chessrec --help`` stays fast.
COMMAND_MODULES = (
    "chessrec.synth.cli",      # render
    "chessrec.recognize",      # predict
    "chessrec.report",         # report
    "chessrec.stages",         # stage (prepare | featurize | train | evaluate | export)
    "chessrec.deploy.cli",     # export
    "chessrec.broadcast.cli",  # broadcast
    "chessrec.adapt.cli",      # finetune
    "chessrec.inference.cli",  # ensemble
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chessrec", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # command not installed in this build
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_library_noise()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"chessrec {args.command}: error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT


if __name__ == "__main__":
    sys.exit(main())
