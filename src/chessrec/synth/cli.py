"""``chessrec render``: write a synthetic data set (the same call the ``prepare`` stage makes)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

RANDOM_SHARE = 0.2  # share of random positions when only --n is given


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "render", help="render synthetic chessboard photos with ChessReD-format annotations",
        description="Render game sequences (one photo per move) and random positions into OUT/images "
                    "and OUT/annotations.json.  Either give --n (total images, about 20% random "
                    "positions) or --games/--random.")
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced when complete)")
    parser.add_argument("--n", type=int, help="about this many images in total (overrides --games/--random)")
    parser.add_argument("--games", type=int, default=10, help="number of games (default 10)")
    parser.add_argument("--moves-per-game", type=int, default=16, help="images per game (default 16)")
    parser.add_argument("--random", type=int, default=40, help="random positions (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    parser.add_argument("--workers", type=int, default=1, help="rendering processes (default 1)")
    parser.add_argument("--contact-sheet", type=Path, help="also write a PNG grid of 16 samples here")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from chessrec.synth import contact_sheet, render_dataset

    games, n_random = args.games, args.random
    if args.n is not None:
        n_random = round(args.n * RANDOM_SHARE)
        games = math.ceil((args.n - n_random) / args.moves_per_game)
    samples = render_dataset(args.out, n_games=games, moves_per_game=args.moves_per_game, n_random=n_random,
                             image_size=args.size, seed=args.seed, workers=args.workers)
    if args.contact_sheet:
        contact_sheet(samples, args.contact_sheet)
    return 0
