"""Featurize throughput: JPEG decode + 64 square crops per board, per crop variant, through featurize itself.

    python benchmarks/bench_featurize.py [--boards 60] [--workers 2]

Prints boards/s of :func:`chessrec.features.featurize` (the stage's own code, writes included) on
one process and over ``--workers`` processes (the featurize stage's target is >= 50 boards/s on
2 cores for ~512 px photos), plus locate_board's time per image.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from chessrec.features import featurize
from chessrec.geometry import CropSpec
from chessrec.imageio import read_rgb
from chessrec.labels import BoardSample
from chessrec.localisation import locate_board
from chessrec.synth import render_board
from chessrec.synth.positions import random_position


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        samples = []
        for i in range(args.boards):
            labels = random_position(rng)
            rendered = render_board(labels, rng_seed=i, image_size=512, with_ids=False)
            path = Path(tmp) / f"{i}.jpg"
            Image.fromarray(rendered.image).save(path, quality=90)
            samples.append(BoardSample(path, labels, rendered.corners, split="train"))
        variants = {"plain 32": {"square": CropSpec(kind="plain", size=32)},
                    "height_aware 32": {"square": CropSpec(kind="height_aware", size=32)},
                    "height_aware 64": {"square": CropSpec(kind="height_aware", size=64)},
                    "two specs 16 + 32": {"occupancy": CropSpec(kind="plain", size=16),
                                          "piece": CropSpec(kind="height_aware", size=32)}}
        for label, specs in variants.items():
            rates = []
            for workers in (1, args.workers):
                start = time.perf_counter()
                featurize(samples, specs, Path(tmp) / "features", workers=workers)
                rates.append(len(samples) / (time.perf_counter() - start))
            print(f"featurize {label:18s}: {rates[0]:6.1f} boards/s in 1 process, "
                  f"{rates[1]:6.1f} boards/s with {args.workers} workers (pool start-up included)")
        start = time.perf_counter()
        for sample in samples[:20]:
            locate_board(read_rgb(sample.image_path))
        print(f"locate_board: {(time.perf_counter() - start) / min(20, len(samples)) * 1000:.0f} ms per 512 px image")


if __name__ == "__main__":
    main()
