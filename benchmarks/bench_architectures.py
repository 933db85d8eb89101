"""Training cost of each backbone as the cascade's piece network: which one buys the most per CPU-second.

    python benchmarks/bench_architectures.py [--steps 12] [--batch 128] [--float32]

The piece network holds most of a training step (``benchmarks/bench_training.py`` times the whole
step), so this steps that network alone: a batch of piece crops of the configured shape
(params.yaml, 80 x 40 in the default profile), forward, backward and AdamW, channels-last, for
every architecture of ``chessrec.models`` at the widths given, with the configured dropout and
per-square inputs and the piece network's 12-way head.  Precision as configured
(``trainer.precision``: bfloat16 autocast where it resolves to ``bf16-mixed``), or float32 with
``--float32``.  The variants are stepped round-robin, so a machine that changes speed mid-run weighs on all of them alike;
prints the p50 milliseconds per step, crops per second and parameters, beside the machine-speed
reference (``chessrec.machine_speed``) before and after.  Random crops: a step's time does not
depend on what the pixels show.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from chessrec import registry
from chessrec.config import load_params
from chessrec.geometry import PIECE_CROPS
from chessrec.labels import NUM_CLASSES
from chessrec.machine_speed import reference_ms
from chessrec.models import SquareClassifier
from chessrec.training import resolve_precision

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = ("strided_cnn:16", "strided_cnn:32", "tiny_cnn:16", "resnet18:8", "resnet18:16",
                    "mobilenet:16", "mobilenet:32")


def variant(text: str) -> tuple[str, int]:
    """``name:width`` from the command line."""
    name, _, width = text.partition(":")
    if name not in registry.ARCHITECTURES or not width.isdigit() or int(width) < 4:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected ARCHITECTURE:WIDTH, ARCHITECTURE one of {', '.join(registry.ARCHITECTURES)}"
            " and WIDTH at least 4")
    return name, int(width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--float32", action="store_true", help="float32 even where bfloat16 runs natively")
    parser.add_argument("variants", nargs="*", type=variant, default=[variant(v) for v in DEFAULT_VARIANTS],
                        help="ARCHITECTURE:WIDTH pairs (default: %(default)s)")
    args = parser.parse_args()
    if args.steps < 1 or args.batch < 1:
        parser.error(f"--steps and --batch must be at least 1, got {args.steps} and {args.batch}")
    params = load_params(REPO / "params.yaml")
    specs = params.features.crop_specs()
    if PIECE_CROPS not in specs:
        parser.error("params.yaml has no piece crops (features.piece_size is null): a single network, no piece network")
    height, width = specs[PIECE_CROPS].output_shape
    bf16 = resolve_precision(params.trainer.precision, params.trainer.accelerator) == "bf16-mixed" and not args.float32
    generator = torch.Generator().manual_seed(0)
    crops = torch.randn(args.batch, 3, height, width, generator=generator).contiguous(memory_format=torch.channels_last)
    squares = torch.randint(0, 64, (args.batch,), generator=generator)
    labels = torch.randint(0, NUM_CLASSES - 1, (args.batch,), generator=generator)
    networks = {}
    for name, w in dict.fromkeys(args.variants):  # each variant once, in the order given
        network = SquareClassifier(name, w, dropout=params.model.dropout, head="single",
                                   extra_inputs=params.features.extra_inputs,
                                   num_classes=NUM_CLASSES - 1).to(memory_format=torch.channels_last).train()
        networks[f"{name} {w} wide"] = (network, torch.optim.AdamW(network.parameters(), lr=1e-3))
    print(f"piece crops {height} x {width}, batch {args.batch}, {'bfloat16 autocast' if bf16 else 'float32'}, "
          f"{torch.get_num_threads()} torch threads")
    before = reference_ms()
    times = {key: [] for key in networks}
    for round_ in range(args.steps + 2):
        for key, (network, optimizer) in networks.items():
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.nll_loss(network(crops, squares), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if round_ >= 2:  # two warm-up rounds
                times[key].append((time.perf_counter() - start) * 1e3)
    print(f"{'piece network':<22} {'ms / step':>10} {'crops / s':>10} {'parameters':>11}")
    for key, samples in times.items():
        ms = statistics.median(samples)
        parameters = sum(p.numel() for p in networks[key][0].parameters())
        print(f"{key:<22} {ms:>10.1f} {args.batch / ms * 1e3:>10.0f} {parameters:>11,}")
    print(f"machine-speed reference: {before:.1f} ms before, {reference_ms():.1f} ms after")


if __name__ == "__main__":
    main()
