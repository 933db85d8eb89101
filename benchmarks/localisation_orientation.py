"""Board localisation and orientation on labelled photos: the issue-4 acceptance figures.

    python benchmarks/localisation_orientation.py --data data/raw --split test --model models/classifier.ckpt \
        [--real ../shared/data/real-dev] [--limit N] [--decoder constrained] [--threads 1] [--json out.json]

Per data set (the synthetic split, and the real-dev photos when ``--real`` exists) it prints one row:

* **Localisation** (:func:`chessrec.localisation.locate_board`): a board's corner error is the
  largest distance between a found corner and its annotated one (both sorted geometrically,
  so the match is as a set), divided by the board size = the mean side length of the
  annotated quad.  A board passes within 2 %; "no board found" counts as a miss.  Median and
  p95 error are over the boards found; s/img is locate_board's own time.
* **Orientation** (:func:`chessrec.recognize.recognize` with ``a1=None``): given the annotated
  corners in a shuffled order, the share whose chosen a1 corner is the annotated one; and end
  to end, from the located corners in a shuffled order, the share whose chosen a1 corner is
  nearest the annotated one (a miss counts as wrong).
* **Squares**: per-square accuracy and share of fully right boards of the predicted FEN, from
  the annotated corners and end to end (a miss counts as 64 wrong squares); s/img is
  ``recognize``'s total from the annotated corners (four rotations' crops and model runs).

Torch runs on ``--threads`` (default 1): on a shared, busy CPU two threads made the tiny model
~7x slower per call than one, which would swamp the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from chessrec.datasets import load_chesscog, load_dataset
from chessrec.decoding import DECODER_NAMES
from chessrec.errors import USER_ERROR_EXIT, UserError
from chessrec.fileio import write_atomic
from chessrec.imageio import read_rgb
from chessrec.inference.loader import load_model
from chessrec.labels import BoardSample
from chessrec.localisation import corner_error, locate_board
from chessrec.metrics import board_metrics
from chessrec.recognize import recognize

#: a board's corners are "found" when every one lies within this fraction of the board size
PASS_ERROR = 0.02


@dataclass(frozen=True)
class Figures:
    """One data set's row of the table (shares in 0..1, errors as fractions of the board size)."""

    dataset: str
    boards: int
    located: int
    locate_pass: float
    error_median: float
    error_p95: float
    locate_s_per_img: float
    orient_given: float
    orient_e2e: float
    square_acc_given: float
    square_acc_e2e: float
    board_acc_given: float
    board_acc_e2e: float
    recognize_s_per_img: float


def a1_right(chosen: np.ndarray, truth: np.ndarray) -> bool:
    """Whether the chosen a1 corner (CORNER_NAMES order, index 3) is nearest the annotated a1 corner."""
    return int(np.argmin(np.linalg.norm(truth - chosen[3], axis=1))) == 3


def measure(name: str, samples: list[BoardSample], classifier, decoder: str, rng: np.random.Generator) -> Figures:
    """Locate, orient and read every sample once, from the annotated and from the located corners."""
    errors, locate_s, recognize_s = [], [], []
    orient_given, orient_e2e, read_given, read_e2e = [], [], [], []
    unread = np.full(64, -1)  # a board that could not be read: every square wrong
    for sample in tqdm(samples, desc=name, unit="img"):
        image = read_rgb(sample.image_path)

        given = recognize(image, corners=rng.permutation(sample.corners), decoder=decoder, model=classifier)
        orient_given.append(a1_right(given.corners, sample.corners))
        read_given.append(given.labels)
        recognize_s.append(given.timings_ms["total"] / 1e3)

        t = time.perf_counter()
        try:
            found = locate_board(image, name=str(sample.image_path))
        except UserError:
            found = None
        locate_s.append(time.perf_counter() - t)
        errors.append(np.inf if found is None else corner_error(found, sample.corners))
        try:
            # the located corners, unordered, as a caller without annotations would pass them
            e2e = None if found is None else recognize(image, corners=rng.permutation(found), decoder=decoder,
                                                       model=classifier)
        except UserError:  # e.g. no rotation decodes to a plausible position
            e2e = None
        orient_e2e.append(e2e is not None and a1_right(e2e.corners, sample.corners))
        read_e2e.append(unread if e2e is None else e2e.labels)

    errors = np.asarray(errors)
    finite = errors[np.isfinite(errors)]
    n = len(samples)
    truth = np.stack([s.labels for s in samples])
    m_given, m_e2e = board_metrics(np.stack(read_given), truth), board_metrics(np.stack(read_e2e), truth)
    return Figures(
        dataset=name,
        boards=n,
        located=len(finite),
        locate_pass=float(np.mean(errors <= PASS_ERROR)),
        error_median=float(np.median(finite)) if len(finite) else float("nan"),
        error_p95=float(np.percentile(finite, 95)) if len(finite) else float("nan"),
        locate_s_per_img=float(np.mean(locate_s)),
        orient_given=float(np.mean(orient_given)),
        orient_e2e=float(np.mean(orient_e2e)),
        square_acc_given=m_given["square_acc"],
        square_acc_e2e=m_e2e["square_acc"],
        board_acc_given=m_given["board_acc"],
        board_acc_e2e=m_e2e["board_acc"],
        recognize_s_per_img=float(np.mean(recognize_s)),
    )


def spread(samples: list[BoardSample], limit: int | None) -> list[BoardSample]:
    """At most ``limit`` samples, evenly spaced so that every game is represented."""
    if limit is None or len(samples) <= limit:
        return samples
    return [samples[i] for i in np.linspace(0, len(samples) - 1, limit).round().astype(int)]


COLUMNS = (  # header, field, format
    ("data set", "dataset", "{}"), ("n", "boards", "{}"), ("found", "located", "{}"),
    ("pass@2%", "locate_pass", "{:.1%}"), ("err p50", "error_median", "{:.2%}"), ("err p95", "error_p95", "{:.2%}"),
    ("locate s/img", "locate_s_per_img", "{:.3f}"), ("a1 given", "orient_given", "{:.1%}"),
    ("a1 e2e", "orient_e2e", "{:.1%}"), ("sq acc given", "square_acc_given", "{:.1%}"),
    ("sq acc e2e", "square_acc_e2e", "{:.1%}"), ("board given", "board_acc_given", "{:.1%}"),
    ("board e2e", "board_acc_e2e", "{:.1%}"), ("recog s/img", "recognize_s_per_img", "{:.3f}"),
)


def table(rows: list[Figures]) -> str:
    cells = [[h for h, _, _ in COLUMNS]] + [[fmt.format(getattr(r, f)) for _, f, fmt in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/raw"), help="rendered data set (ChessReD format)")
    parser.add_argument("--split", choices=("train", "val", "test"), default="test")
    parser.add_argument("--model", type=Path, default=Path("models/classifier.ckpt"))
    parser.add_argument("--real", type=Path, default=None, help="chesscog-style real photos (skipped when absent)")
    parser.add_argument("--limit", type=int, default=None, help="at most N boards per data set")
    parser.add_argument("--decoder", choices=DECODER_NAMES, default="constrained")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corner shuffles")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)

    classifier = load_model(args.model)
    rng = np.random.default_rng(args.seed)
    synthetic = [s for s in load_dataset("synthetic", args.data).samples if s.split == args.split]
    if not synthetic:
        raise UserError(f"{args.data}: no samples in split {args.split!r}")
    sets = {f"synthetic/{args.split}": synthetic}
    if args.real is not None and args.real.exists():
        sets[args.real.name] = load_chesscog(args.real).samples
    elif args.real is not None:
        print(f"{args.real}: not found, real photos skipped")

    rows = [measure(name, spread(samples, args.limit), classifier, args.decoder, rng) for name, samples in sets.items()]
    print(f"model {args.model}, decoder {args.decoder}, {args.threads} torch thread(s); corner error = largest corner distance / mean side "
          f"of the annotated quad, pass <= {PASS_ERROR:.0%}")
    print(table(rows))
    if args.json is not None:
        write_atomic(args.json, json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
