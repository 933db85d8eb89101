"""Broadcast speed on one core at 1280 x 720: settled-frame decodes per second, delay, beside a reference.

A rendered game (fixed camera, a hand over the board for each move, sensor noise) is shown at
1280 x 720: each 720 px render sits in the middle of a frame padded with its own edge pixels.
The session follows it as ``chessrec broadcast`` does, with each model given (torch checkpoint,
ONNX fp32, ONNX int8), each read single-view and mirror-averaged (the default), all in this one run.

    python benchmarks/bench_broadcast.py [--models models/classifier.ckpt models/classifier.int8.onnx] [--plies 40]

Targets (issue 14): at least 5 settled-frame decodes per second, a move in the PGN at most 2 s
after its settled frame.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the targets are stated

import chess  # noqa: E402
import cv2  # noqa: E402
import torch  # noqa: E402

from chessrec.broadcast.benchmark import TimedSession, render_game  # noqa: E402
from chessrec.broadcast.frames import Frame  # noqa: E402
from chessrec.broadcast.pgn import BroadcastOutputs  # noqa: E402
from chessrec.inference.loader import default_model, load_model  # noqa: E402
from chessrec.inference.onnx_backend import open_onnx_model  # noqa: E402
from chessrec.machine_speed import DESCRIPTION, reference_ms  # noqa: E402
from chessrec.recognize import Recognizer  # noqa: E402

WIDTH, HEIGHT = 1280, 720


def widescreen(frame: Frame) -> Frame:
    pad = (WIDTH - frame.pixels.shape[1]) // 2
    return Frame(frame.index, frame.time_s, cv2.copyMakeBorder(frame.pixels, 0, 0, pad, pad, cv2.BORDER_REPLICATE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path, default=None)
    parser.add_argument("--plies", type=int, default=40)
    parser.add_argument("--seed", type=int, default=11000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = args.models or [default_model()]
    game = render_game(args.seed, args.plies, HEIGHT, still_frames=4, fps=5.0)
    frames = [widescreen(f) for f in game.frames]
    print(f"machine-speed reference: {reference_ms():.1f} ms ({DESCRIPTION})")
    print(f"{len(game.moves)} plies, {len(frames)} frames of {WIDTH} x {HEIGHT} (5 per second of stream)")
    for path in models:
        model = open_onnx_model(path, threads=1) if path.suffix == ".onnx" else load_model(path)
        for views, mirror_average in (("single view", False), ("mirror-averaged", True)):
            with tempfile.TemporaryDirectory() as tmp:
                outputs = BroadcastOutputs(Path(tmp) / "game.pgn", None, chess.Board(), {})
                recognizer = Recognizer(model, mirror_average=mirror_average)
                session = TimedSession(recognizer, outputs, chess.Board(), truth=game.moves)
                start = time.perf_counter()
                moves = session.run(iter(frames))
                wall = time.perf_counter() - start
            s = session.summary
            delays = [t - game.frames[game.shows.index(ply + 1)].time_s + ms / 1e3
                      for ply, (t, ms) in session.published_at.items()]
            decode = statistics.median(s.decode_ms)
            right = moves == game.moves
            print(f"{path.name}, {views}: decode p50 {decode:.1f} ms ({1e3 / decode:.1f} settled decodes/s), "
                  f"first decode {s.decode_ms[0]:.0f} ms (fitting the located board to the start: 36 "
                  f"classifications), {len(frames) / wall:.1f} frames/s overall incl. locating once; delay p50 "
                  f"{statistics.median(delays):.2f} s, max {max(delays):.2f} s; game {'right' if right else 'WRONG'}")
    print(f"machine-speed reference after: {reference_ms():.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
