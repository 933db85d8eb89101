"""Rendering throughput on one core: images/s for the per-image work of ``render_dataset``.

    python benchmarks/bench_render.py [--size 512] [--n 60] [--workers 2]

Measures render + JPEG encoding on one core (OpenCV limited to one thread); with
``--workers`` > 1 it also times a whole ``render_dataset`` run in a temporary folder.
Acceptance for issue 3: at least 10 images/s at 512 x 512 on one core.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from chessrec.synth import render_board, render_dataset
from chessrec.synth.positions import game_positions, random_position


def one_core(size: int, n: int) -> tuple[float, float]:
    """(images per wall-clock second, images per CPU second of this process)."""
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    positions = game_positions(rng, n // 2) + [random_position(rng) for _ in range(n - n // 2)]
    render_board(positions[0], 0, size)  # build the piece meshes outside the timing
    start, cpu = time.perf_counter(), time.process_time()
    for seed, labels in enumerate(positions):
        image = render_board(labels, seed, size, with_ids=False)
        cv2.imencode(".jpg", cv2.cvtColor(image.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return len(positions) / (time.perf_counter() - start), len(positions) / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    wall, cpu = one_core(args.size, args.n)
    print(f"render_board+jpeg, 1 core, {args.size}px: {wall:.1f} images/s wall-clock ({1000 / wall:.1f} ms/image), "
          f"{cpu:.1f} images per CPU-second (the figure that ignores other load on the machine)")
    if args.workers > 1:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            samples = render_dataset(Path(tmp) / "raw", n_games=args.n // 10, moves_per_game=8,
                                     n_random=args.n // 5, image_size=args.size, seed=0, workers=args.workers)
            elapsed = time.perf_counter() - start
        print(f"render_dataset, {args.workers} workers, {args.size}px: {len(samples) / elapsed:.1f} images/s "
              f"({len(samples)} images in {elapsed:.1f} s, process start-up included)")


if __name__ == "__main__":
    main()
