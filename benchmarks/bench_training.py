"""Training throughput of the default cascade: one optimiser step of both networks, per variant, in one run.

    python benchmarks/bench_training.py [--steps 12] [--batch 256] [--compile]

A step is what ``CascadeModule.training_step`` does: a batch of occupancy crops (48 x 24) and a
batch of piece crops (80 x 40), each preprocessed and jittered, forward, backward and AdamW, on
the threads torch uses by default (both cores here).  Variants: the configured step (params.yaml),
and the same step with one setting changed at a time: float32 against bfloat16 autocast
(``trainer.precision``; bfloat16 only where the CPU runs it natively, emulated it takes 9x), the
occupancy network as wide as the piece network or half as wide (``model.occupancy_width``), the
crops' geometric jitter off or on (``train.crop_shift`` / ``crop_zoom`` / ``crop_rotation_deg``).
``--compile`` adds the configured step with both networks under ``torch.compile`` (inductor, which
needs a C++ compiler); the first step's time, which includes compiling, is printed for every variant.
They are stepped round-robin.  Prints the p50 milliseconds per step and crops per second,
beside the machine-speed reference (``chessrec.machine_speed``) before and after.  Random crops:
the time of a step does not depend on what the pixels show.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from chessrec.config import load_params
from chessrec.machine_speed import reference_ms
from chessrec.jitter import CropJitter
from chessrec.training import CascadeModule, model_card, native_bf16

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


def _shown(value) -> str:
    if isinstance(value, CropJitter):
        return (f"shift {value.shift:g}, zoom {value.zoom:g}, rotation {value.rotation_deg:g} deg"
                if value.active else "off")
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--compile", action="store_true", help="add the configured step under torch.compile")
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
    m = params.model
    configured = {"precision": "bf16" if native_bf16(params.trainer.accelerator) else "float32",
                  "occupancy width": m.occupancy_width or m.width,
                  "crop jitter": CropJitter.of(params.train)}
    changes = [{}, {"occupancy width": m.width if configured["occupancy width"] != m.width else max(4, m.width // 2)},
               {"crop jitter": CropJitter() if configured["crop jitter"].active else CropJitter(0.06, 0.1)}]
    if native_bf16(params.trainer.accelerator):
        changes.append({"precision": "float32"})
    variants = {}
    for change in changes:
        setting = {**configured, **change}
        tuned = params.model_copy(update={"model": m.model_copy(update={"occupancy_width": setting["occupancy width"]})})
        module = CascadeModule(model_card(tuned).to_dict(), 1e-3, 0.0, asdict(setting["crop jitter"])).train()
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
        label = "configured" if not change else "; ".join(f"{k} {_shown(v)}" for k, v in change.items())
        variants[label] = (module, optimizer, setting["precision"] == "bf16")
        if args.compile and not change:
            compiled = CascadeModule(model_card(tuned).to_dict(), 1e-3, 0.0, asdict(setting["crop jitter"])).train()
            compiled.occupancy, compiled.piece = torch.compile(compiled.occupancy), torch.compile(compiled.piece)
            variants["configured, torch.compile"] = (compiled, torch.optim.AdamW(compiled.parameters(), lr=1e-3),
                                                     setting["precision"] == "bf16")
    print("configured: " + ", ".join(f"{k} {_shown(v)}" for k, v in configured.items()))
    before = reference_ms()
    times, first = {key: [] for key in variants}, {}
    for round_ in range(args.steps + 2):  # round-robin, so a machine that speeds up or slows down mid-run
        for key, (module, optimizer, bf16) in variants.items():  # weighs on every variant alike
            ms = train_step(module, optimizer, batches, bf16)
            first.setdefault(key, ms)
            if round_ >= 2:  # two warm-up rounds
                times[key].append(ms)
    print(f"{'variant':<40} {'ms / step':>10} {'crops / s':>10} {'first step, ms':>15}")
    for label, samples in times.items():
        ms = statistics.median(samples)
        print(f"{label:<40} {ms:>10.1f} {2 * args.batch / ms * 1e3:>10.0f} {first[label]:>15.0f}")
    print(f"machine-speed reference: {before:.1f} ms before, {reference_ms():.1f} ms after; "
          f"{torch.get_num_threads()} torch threads")


if __name__ == "__main__":
    main()
