"""Photo -> FEN latency on one core with the model loaded (Python API), beside a machine-speed reference.

A real phone photo (3240 x 5760 JPEG) is read from disk on every run, as a broadcast would:
with its annotated corners given, and with corners and a1 found automatically.

    python benchmarks/bench_predict.py [--photo ../shared/data/real-dev/IMG_4745.jpg] [--model M] [--runs 5]

Targets (issue 12): at most 300 ms per photo with known corners, 700 ms with corners and a1 found.
Both readings are timed in the same run: each square once (``--single-view``) and, as the
recognizer reads by default, also mirrored and averaged.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the targets are stated

import torch  # noqa: E402

from chessrec.machine_speed import DESCRIPTION, reference_ms  # noqa: E402
from chessrec.recognize import Recognizer  # noqa: E402

REAL_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-dev"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=REAL_DEV / "IMG_4745.jpg")
    parser.add_argument("--model", type=Path, default=None, help="model file (default: the pipeline's or released)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    labels = json.loads((args.photo.parent / "labels.json").read_text())[args.photo.name]
    print(f"machine-speed reference: {reference_ms():.1f} ms ({DESCRIPTION})")
    for views, mirror_average in (("single view", False), ("mirror-averaged", True)):
        recognizer = Recognizer(args.model, lock=False, mirror_average=mirror_average)
        recognizer.recognize(args.photo, corners=labels["corners"], a1="bottom-left")  # loads the model
        for title, kwargs in (("known corners, a1 given", {"corners": labels["corners"], "a1": "bottom-left"}),
                              ("corners and a1 found", {})):
            totals, parts = [], []
            for _ in range(args.runs):
                start = time.perf_counter()
                result = recognizer.recognize(args.photo, **kwargs)
                totals.append(1e3 * (time.perf_counter() - start))
                parts.append(result.timings_ms)
            steps = ", ".join(f"{k} {statistics.median(p[k] for p in parts):.0f}" for k in parts[0] if k != "total")
            print(f"{views}, {title}: median {statistics.median(totals):.0f} ms over {args.runs} runs ({steps}); "
                  f"fen {result.fen}")
    print(f"machine-speed reference after: {reference_ms():.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
