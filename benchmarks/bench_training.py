"""Training throughput of the default cascade: one optimiser step of both networks, per variant, in one run.

    python benchmarks/bench_training.py [--steps 12] [--batch 256]

A step is what ``CascadeModule.training_step`` does: a batch of occupancy crops (48 x 24) and a
batch of piece crops (80 x 40), each preprocessed and jittered, forward, backward and AdamW, on
the threads torch uses by default (both cores here).  Variants: float32 against bfloat16 autocast
(``trainer.precision``), the occupancy network as wide as the piece network against half as wide
(``model.occupancy_width``), stepped round-robin.  Prints the p50 milliseconds per step and crops per second, beside the
machine-speed reference (``chessrec.machine_speed``) before and after.  Random crops: the time of
a step does not depend on what the pixels show.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import torch

from chessrec.config import load_params
from chessrec.machine_speed import reference_ms
from chessrec.training import CascadeModule, model_card

REPO = Path(__file__).resolve().parents[1]


def train_step(module: CascadeModule, optimizer: torch.optim.Optimizer, batches: dict, bf16: bool) -> float:
    """One optimiser step of both networks through the module's own ``training_step``; its milliseconds."""
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = module.training_step(batches, 0)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*self.log.*")  # no trainer here: the step's logging is a no-op
    params = load_params(REPO / "params.yaml")
    specs = params.features.crop_specs()
    generator = torch.Generator().manual_seed(0)
    batches = {}
    for stage, classes in (("occupancy", 2), ("piece", 12)):
        shape = (args.batch, 3, *specs[stage].output_shape)
        batches[stage] = (torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator),
                          torch.randint(0, 64, (args.batch,), generator=generator),
                          torch.randint(0, classes, (args.batch,), generator=generator))
    variants = {}
    for occupancy_width in (params.model.width, max(4, params.model.width // 2)):  # 4: the config's minimum
        tuned = params.model_copy(update={"model": params.model.model_copy(update={"occupancy_width": occupancy_width})})
        module = CascadeModule(model_card(tuned).to_dict(), 1e-3, 0.0).train()
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
        for bf16 in (False, True):
            variants[("bf16" if bf16 else "float32", occupancy_width)] = (module, optimizer, bf16)
    before = reference_ms()
    times = {key: [] for key in variants}
    for round_ in range(args.steps + 2):  # round-robin, so a machine that speeds up or slows down mid-run
        for key, (module, optimizer, bf16) in variants.items():  # weighs on every variant alike
            ms = train_step(module, optimizer, batches, bf16)
            if round_ >= 2:  # two warm-up rounds
                times[key].append(ms)
    print(f"{'precision':<10} {'occupancy width':>15} {'ms / step':>10} {'crops / s':>10}")
    for (precision, occupancy_width), samples in times.items():
        ms = statistics.median(samples)
        print(f"{precision:<10} {occupancy_width:>15} {ms:>10.1f} {2 * args.batch / ms * 1e3:>10.0f}")
    print(f"machine-speed reference: {before:.1f} ms before, {reference_ms():.1f} ms after; "
          f"{torch.get_num_threads()} torch threads")


if __name__ == "__main__":
    main()
