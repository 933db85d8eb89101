"""Sim-to-real transfer: score a classifier trained on synthetic renders on real, annotated photos.

A measurement, not a test: the real photos (chesscog format, hand-clicked corners, White at the
bottom) are development data.  Each photo is first shrunk so that its board's longest side is
``--board-px`` pixels, about the size the synthetic boards have (median ~200 px at the default
384 px renders), so the crops see the same blur and detail as in training; then the model's own
crop spec cuts the squares.  Several sizes may be given to measure which transfers best.

    python scripts/real_dev_transfer.py --model models/classifier.ckpt --data ../shared/data/real-dev \
        --out transfer.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from chessrec.datasets import load_chesscog
from chessrec.decoding import DecodeOptions
from chessrec.errors import USER_ERROR_EXIT, UserError
from chessrec.fileio import write_atomic
from chessrec.geometry import CropSpec, board_sides, crop_contact_sheet, square_crops
from chessrec.imageio import read_rgb
from chessrec.inference.loader import load_model
from chessrec.inference.views import with_views
from chessrec.labels import CLASS_NAMES, BoardSample
from chessrec.metrics import evaluate_predictions

#: median longest board side, in pixels, of the default synthetic data (384 px renders)
SYNTHETIC_BOARD_PX = 200
#: the contact sheet shows this many photos (the real-dev photos stay out of git: the sheet is written
#: on demand, never committed)
REAL_CROPS_PNG = "plots/real_dev_crops.png"
CONTACT_BOARDS = 4
#: decoders compared: name -> (decoder, options); real positions are not all legal, hence non-strict too
DECODERS = {
    "argmax": ("argmax", DecodeOptions()),
    "constrained": ("constrained", DecodeOptions(strict=True)),
    "constrained_nonstrict": ("constrained", DecodeOptions(strict=False)),
}


def shrink_to_board(image: np.ndarray, corners: np.ndarray, board_px: int) -> tuple[np.ndarray, np.ndarray]:
    """The photo and corners scaled so the board's longest side is ``board_px`` (0 or larger: unchanged).

    Area averaging, as a camera with fewer pixels would integrate the scene.
    """
    scale = board_px / float(board_sides(corners).max()) if board_px > 0 else 1.0
    if scale >= 1.0:
        return image, np.asarray(corners, dtype=np.float64)
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    # pixel centres: x' + 0.5 = (x + 0.5) * scale
    return small, (np.asarray(corners, dtype=np.float64) + 0.5) * scale - 0.5


def real_crops(samples: list[BoardSample], specs: dict[str, CropSpec], sizes: list[int]) -> dict[int, dict[str, np.ndarray]]:
    """Per board size, the (N, 64, 3, H, W) crops per spec of every photo shrunk to it (each photo read once)."""
    out: dict[int, dict[str, list[np.ndarray]]] = {px: {name: [] for name in specs} for px in sizes}
    for sample in samples:
        photo = read_rgb(sample.image_path)
        for px in sizes:
            image, corners = shrink_to_board(photo, sample.corners, px)
            for name, spec in specs.items():
                out[px][name].append(square_crops(image, corners, spec))
    return {px: {name: np.stack(crops) for name, crops in by_spec.items()} for px, by_spec in out.items()}


def top_confusions(confusion: np.ndarray, n: int = 8) -> list[dict]:
    """The ``n`` most frequent (true -> predicted) mistakes."""
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:n]
    return [{"true": CLASS_NAMES[t], "predicted": CLASS_NAMES[p], "count": int(off[t, p])}
            for t, p in zip(*np.unravel_index(order, off.shape)) if off[t, p] > 0]


def measure(probs: np.ndarray, true: np.ndarray) -> dict:
    """Board metrics per decoder (the evaluation suite's own), plus the confusion summary."""
    photos = np.array([str(i) for i in range(len(true))])  # each photo its own game: no move chains
    result = {}
    for key, (name, options) in DECODERS.items():
        scored = evaluate_predictions(probs, true, photos, np.zeros(len(true), int), [name], options)
        result[key] = {**scored.metrics[name], "per_class": scored.per_class[name],
                       "top_confusions": top_confusions(scored.confusion[name])}
    return result


def _print(board_px: int, metrics: dict) -> None:
    size = "native" if board_px <= 0 else f"{board_px} px"
    print(f"\nboard side {size}")
    print(f"  {'decoder':24s} {'square':>7s} {'board':>7s} {'<=1 err':>7s} {'err/bd':>7s} {'occup':>7s}")
    for key, m in metrics.items():
        print(f"  {key:24s} {m['square_acc']:7.4f} {m['board_acc']:7.4f} {m['board_acc_le1']:7.4f} "
              f"{m['errors_per_board']:7.2f} {m['occupancy_acc']:7.4f}")
    am = metrics["argmax"]
    recalls = ", ".join(f"{name} {s['recall']:.2f}" for name, s in am["per_class"].items() if s["support"])
    print(f"  argmax recall per class: {recalls}")
    mistakes = ", ".join(f"{c['true']}->{c['predicted']} {c['count']}" for c in am["top_confusions"])
    print(f"  argmax top confusions: {mistakes}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/classifier.ckpt"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/real-dev"))
    parser.add_argument("--board-px", type=int, nargs="+", default=[SYNTHETIC_BOARD_PX],
                        help=f"longest board side to shrink photos to; 0 = native (default {SYNTHETIC_BOARD_PX})")
    parser.add_argument("--single-view", dest="mirror_average", action="store_false",
                        help="read each crop once (default: also mirrored and averaged, as the recognizer reads it)")
    parser.add_argument("--out", type=Path, help="write the metrics here as JSON")
    parser.add_argument("--crops-png", type=Path, default=None,
                        help="also draw the model's crops of the first photos as a contact sheet "
                             f"(e.g. {REAL_CROPS_PNG}, view it with `dvc plots show plots/crops.png {REAL_CROPS_PNG}`)")
    args = parser.parse_args(argv)
    try:
        if any(px < 0 or 0 < px < 64 for px in args.board_px):
            raise UserError(f"--board-px must be 0 (native) or at least 64, got {args.board_px}")
        model = with_views(load_model(args.model), args.mirror_average)
        samples = load_chesscog(args.data).samples
        if not samples:
            raise UserError(f"{args.data}: no annotated photos")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    true = np.stack([s.labels for s in samples])
    specs = dict(model.crop_specs)
    print(f"{len(samples)} photos from {args.data}; model {args.model} ({specs})")
    report = {"model": str(args.model), "data": str(args.data), "n_photos": len(samples),
              "mirror_average": args.mirror_average,
              "crop_specs": {name: asdict(spec) for name, spec in specs.items()}, "by_board_px": {}}
    shown, *_ = specs  # the contact sheet shows the first spec's crops
    for board_px, crops in real_crops(samples, specs, args.board_px).items():
        if args.crops_png is not None and board_px == args.board_px[0]:
            crop_contact_sheet(list(crops[shown][:CONTACT_BOARDS]), args.crops_png,
                               titles=[s.image_path.name for s in samples[:CONTACT_BOARDS]])
            print(f"wrote {args.crops_png}")
        probs = model.predict_proba(crops)
        metrics = measure(probs, true)
        _print(board_px, metrics)
        report["by_board_px"][str(board_px)] = metrics
    if args.out:
        write_atomic(args.out, json.dumps(report, indent=1))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
