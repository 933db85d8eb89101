"""``chessrec ensemble``: several trained checkpoints combined into one model file."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ensemble", help="combine trained checkpoints into one model that averages their readings",
        description="Combine trained checkpoints (.ckpt) into one ensemble checkpoint: every member reads the same "
                    "crops and their probabilities are combined by geometric mean. It loads, predicts, broadcasts "
                    "and adapts like any other model.")
    parser.add_argument("models", type=Path, nargs="+", help="checkpoints to combine (2 or more)")
    parser.add_argument("--out", type=Path, required=True, help="ensemble checkpoint to write (*.ckpt)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chessrec.inference.ensemble import combine_files

    card = combine_files(args.models, args.out)
    members = card.architecture["members"]
    print(f"{args.out}: ensemble of {len(members)} models reading {', '.join(card.crop_specs)} crops "
          f"({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0
