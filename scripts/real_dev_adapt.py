"""Learning curve of adaptation on real, labelled photos of one set: adapt on n photos, score on the others.

A measurement, not a test (the real photos are development data and never enter the repository).
For each n, ``--draws`` random choices of n photos adapt the base model (``chessrec.adapt``, the
same code as ``chessrec finetune``), and the photos not chosen score base and adapted model
(constrained decoder, non-strict: some real-dev positions are not legal games).  ``fullest``
adds, for each n, the n photos that show the most pieces: what a user photographing a set would
pick.

    python scripts/real_dev_adapt.py --data ../shared/data/real-dev --counts 2 5 10 --draws 3 --out adapt_curve.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from chessrec.adapt.finetune import finetune, score_models, score_photos
from chessrec.adapt.photos import photos_from_folder
from chessrec.config import FinetuneConfig
from chessrec.errors import USER_ERROR_EXIT, UserError
from chessrec.fileio import write_atomic
from chessrec.inference.loader import RELEASED_MODEL
from chessrec.labels import EMPTY
from chessrec.machine_speed import reference_ms


def choices(photos: list, n: int, draws: int, seed: int, fullest: bool) -> list[tuple[str, list]]:
    """(label, chosen photos) per draw of n photos."""
    out = []
    if fullest:
        order = sorted(range(len(photos)), key=lambda i: (-(photos[i].labels != EMPTY).sum(), photos[i].path.name))
        out.append(("fullest", [photos[i] for i in sorted(order[:n])]))
    rng = np.random.default_rng(seed + n)  # the same draws whatever the fine-tuning options
    for draw in range(draws):
        out.append((f"random{draw}", [photos[i] for i in sorted(rng.choice(len(photos), n, replace=False))]))
    return out


def finetune_options(pairs: list[str]) -> FinetuneConfig:
    """FinetuneConfig from KEY=VALUE pairs (values parsed as YAML: numbers, booleans, words)."""
    import yaml
    from pydantic import ValidationError

    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UserError(f"--option {pair!r}: expected KEY=VALUE")
        values[key] = yaml.safe_load(value)
    try:
        return FinetuneConfig(**values)
    except ValidationError as exc:
        raise UserError(f"--option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=RELEASED_MODEL, help="base model (default: the released one)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/real-dev"))
    parser.add_argument("--counts", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--no-fullest", dest="fullest", action="store_false")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a fine-tuning option of chessrec.config.FinetuneConfig (e.g. steps=400), repeatable")
    parser.add_argument("--single-view", dest="mirror_average", action="store_false",
                        help="score each crop once (default: also mirrored and averaged, as the recognizer reads it)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        photos = photos_from_folder(args.data)
        if max(args.counts) >= len(photos):
            raise UserError(f"--counts up to {max(args.counts)} leaves no photo of the {len(photos)} to score on")
        options = finetune_options(args.option)
        print(f"machine-speed reference {reference_ms():.1f} ms; base {args.model}; {len(photos)} photos", flush=True)
        base = score_photos(args.model, photos, mirror_average=args.mirror_average)["constrained"]
        print(f"base on all {len(photos)}: squares {base['square_acc']:.4f}, boards {base['board_acc']:.3f}, "
              f"errors/board {base['errors_per_board']:.2f}", flush=True)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.counts:
                for label, chosen in choices(photos, n, args.draws, 0, args.fullest):
                    names = {p.path.name for p in chosen}
                    held_out = [p for p in photos if p.path.name not in names]
                    adapted = finetune(args.model, chosen, Path(tmp) / "adapted.ckpt", options, log=lambda _: None)
                    scores = score_models({"base": args.model, "adapted": adapted.path}, held_out,
                                          mirror_average=args.mirror_average)
                    before, after = scores["base"]["constrained"], scores["adapted"]["constrained"]
                    row = {"n": n, "draw": label, "photos": sorted(names), "held_out": len(held_out),
                           "fit_s": adapted.fit_s, "energy_j": adapted.energy_j, "energy_method": adapted.energy_method,
                           "unseen_classes": list(adapted.unseen_classes), "base": before, "adapted": after}
                    rows.append(row)
                    print(f"n={n:2d} {label:8s} squares {before['square_acc']:.4f} -> {after['square_acc']:.4f}  "
                          f"boards {before['board_acc']:.3f} -> {after['board_acc']:.3f}  errors/board "
                          f"{before['errors_per_board']:.2f} -> {after['errors_per_board']:.2f}  "
                          f"({adapted.fit_s:.0f} s, {adapted.energy_j:.0f} J)", flush=True)
        print(f"machine-speed reference {reference_ms():.1f} ms after")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    for n in args.counts:
        mine = [r for r in rows if r["n"] == n and r["draw"].startswith("random")]
        if mine:
            print(f"n={n:2d} mean of {len(mine)} random draws: squares "
                  f"{np.mean([r['adapted']['square_acc'] for r in mine]):.4f}, boards "
                  f"{np.mean([r['adapted']['board_acc'] for r in mine]):.3f}, errors/board "
                  f"{np.mean([r['adapted']['errors_per_board'] for r in mine]):.2f}")
    if args.out:
        write_atomic(args.out, json.dumps({"model": str(args.model), "options": options.model_dump(), "rows": rows},
                                          indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
