"""Model latency per board: torch, ONNX fp32 and ONNX int8 side by side, one CPU thread, one board a time.

The pipeline's own artefacts (``dvc repro`` writes all three) score the same test boards; the
machine-speed reference is measured in the same run, so the figures can be read against it.

    python benchmarks/bench_backends.py [--model models/classifier.ckpt] [--boards 64] [--repeats 3]

Target (issue 15): at most 3 ms per board for the fastest artefact.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target is stated

import numpy as np  # noqa: E402
import torch  # noqa: E402

from chessrec.deploy.artefacts import int8_path  # noqa: E402
from chessrec.evaluation import model_latency_per_board  # noqa: E402
from chessrec.features import crops_by_spec, load_features  # noqa: E402
from chessrec.inference.loader import load_model  # noqa: E402
from chessrec.inference.onnx_backend import open_onnx_model  # noqa: E402
from chessrec.machine_speed import DESCRIPTION, reference_ms  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/classifier.ckpt"))
    parser.add_argument("--features", type=Path, default=Path("data/features/test"))
    parser.add_argument("--boards", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    onnx = args.model.with_suffix(".onnx")
    models = {"torch": load_model(args.model), "onnx_fp32": open_onnx_model(onnx, threads=1),
              "onnx_int8": open_onnx_model(int8_path(onnx), threads=1)}
    crops = crops_by_spec(load_features(args.features))
    print(f"machine-speed reference: {reference_ms():.1f} ms ({DESCRIPTION})")
    print(f"{args.boards} test boards, one at a time, 1 thread; median of {args.repeats} runs of each p50")
    for name, model in models.items():
        board_crops = {spec: crops[spec][:args.boards] for spec in model.crop_specs}
        p50 = [float(np.percentile(model_latency_per_board(model, board_crops), 50)) * 1e3
               for _ in range(args.repeats)]
        print(f"{name:10s} p50 {statistics.median(p50):6.2f} ms per board")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
