"""Featurize throughput: JPEG decode + 64 square crops per board, per crop variant.

    python benchmarks/bench_featurize.py [--boards 60] [--workers 2]

Prints boards/s on one core and over ``--workers`` processes (the featurize stage's target is
>= 50 boards/s on 2 cores for ~512 px photos), plus locate_board's time per image.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from chessrec.geometry import CropSpec, square_crops
from chessrec.imageio import read_rgb
from chessrec.localisation import locate_board
from chessrec.synth import render_board
from chessrec.synth.positions import random_position


def _crop_file(job: tuple[str, np.ndarray, CropSpec]) -> int:
    path, corners, spec = job
    return square_crops(read_rgb(path), corners, spec).shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(args.boards):
            rendered = render_board(random_position(rng), rng_seed=i, image_size=512, with_ids=False)
            path = Path(tmp) / f"{i}.jpg"
            Image.fromarray(rendered.image).save(path, quality=90)
            files.append((str(path), rendered.corners))
        for spec in (CropSpec(kind="plain", size=32), CropSpec(kind="height_aware", size=32),
                     CropSpec(kind="height_aware", size=64)):
            jobs = [(path, corners, spec) for path, corners in files]
            start = time.perf_counter()
            for job in jobs:
                _crop_file(job)
            one = len(jobs) / (time.perf_counter() - start)
            # one OpenCV thread per worker process: nested threading oversubscribes the cores
            with ProcessPoolExecutor(args.workers, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
                list(pool.map(_crop_file, jobs[: args.workers]))  # start the workers
                start = time.perf_counter()
                list(pool.map(_crop_file, jobs, chunksize=4))
                many = len(jobs) / (time.perf_counter() - start)
            print(f"featurize {spec.kind:12s} size={spec.size:3d}: {one:6.1f} boards/s on 1 core, "
                  f"{many:6.1f} boards/s with {args.workers} workers")
        start = time.perf_counter()
        for path, _ in files[:20]:
            locate_board(read_rgb(path))
        print(f"locate_board: {(time.perf_counter() - start) / min(20, len(files)) * 1000:.0f} ms per 512 px image")


if __name__ == "__main__":
    main()
