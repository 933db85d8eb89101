"""Check GPU energy measurement on a real GPU: about a minute of training, counter vs samples.

Trains a small convnet on random crops on ``cuda:0``: a warm-up, a stretch without the meter
(baseline throughput), then a metered stretch split into short windows inside one long one,
then a few idle seconds. Reports, per window, the NVML counter's energy, the integral of the
sampled power and their disagreement, plus the achieved sampling interval and the sampler's
overhead (its own CPU time, and the throughput lost against the baseline). Writes a JSON.

    python scripts/gpu_energy_check.py --out gpu_energy_check.json
    python scripts/gpu_energy_check.py --simulate --seconds 10   # dry run without a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from chessrec.energy import EnergyMeter, Measurement
from chessrec.energy.callback import write_atomic
from chessrec.energy.simulated import SimulatedGpu, SimulatedNVML

GPU = "gpu:0"


def make_step(device: torch.device, batch: int) -> Callable[[], None]:
    """One AdamW step of a small convnet; heavy enough to keep a datacentre GPU busy."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(64, 128, 3, padding=1, stride=2), torch.nn.ReLU(),
        torch.nn.Conv2d(128, 256, 3, padding=1, stride=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(256, 13),
    ).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, 64, 64, device=device)
    y = torch.randint(0, 13, (batch,), device=device)

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()

    return step


def train_for(step: Callable[[], None], seconds: float, sync: Callable[[], None]) -> int:
    """Run steps until ``seconds`` have passed; returns how many ran."""
    steps, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        step()
        steps += 1
        if steps % 10 == 0:
            sync()  # keep the queue short so the deadline means GPU time
    sync()
    return steps


def window_report(m: Measurement) -> dict:
    series = m.power_series.get(GPU, [])
    return {
        "name": m.name,
        "wall_s": m.wall_s,
        "method": m.methods.get(GPU),
        "energy_j": m.energy_j.get(GPU),
        "sampled_mean_w": sum(w for _, w in series) / len(series) if series else None,
        "disagreement": m.disagreement.get(GPU),
        "cpu_j": m.energy_j.get("cpu"),
        "cpu_method": m.methods.get("cpu"),
        "partial": m.partial,
        "faults": list(m.faults),
    }


def run(args: argparse.Namespace) -> dict:
    if args.simulate:
        device, nvml, sync = torch.device("cpu"), SimulatedNVML([SimulatedGpu.ramp(120.0, 2.0)]), lambda: None
        os.environ["CUDA_VISIBLE_DEVICES"] = "0"
        gpu_name = "simulated"
    else:
        if not torch.cuda.is_available():
            sys.exit("gpu_energy_check: no CUDA GPU is available (use --simulate for a dry run)")
        device, nvml, sync = torch.device("cuda", 0), None, torch.cuda.synchronize
        gpu_name = torch.cuda.get_device_name(0)
    step = make_step(device, args.batch)

    warmup_steps = train_for(step, args.seconds * 0.1, sync)
    baseline_s = args.seconds * 0.3
    baseline_steps = train_for(step, baseline_s, sync)

    metered_s = args.seconds * 0.5
    windows = []
    with EnergyMeter(gpu_indices=[0], sample_interval_s=args.interval, nvml=nvml) as meter:
        meter.begin_window("metered")
        metered_steps = 0
        n_short = max(1, round(metered_s / args.short_window_s))
        for i in range(n_short):
            meter.begin_window(f"short-{i}")
            metered_steps += train_for(step, metered_s / n_short, sync)
            windows.append(meter.end_window(f"short-{i}"))
        metered = meter.end_window("metered")
        meter.begin_window("idle")
        time.sleep(args.seconds * 0.1)
        idle = meter.end_window("idle")
        stats = meter.sampler_stats

    short_disagreements = [abs(w.disagreement[GPU]) for w in windows if GPU in w.disagreement]
    baseline_rate = baseline_steps / baseline_s
    metered_rate = metered_steps / metered.wall_s
    return {
        "gpu": gpu_name,
        "simulated": args.simulate,
        "interval_s_requested": args.interval,
        "interval_s_achieved_mean": stats.mean_interval_s,
        "interval_s_achieved_max": stats.max_interval_s,
        "sampler_ticks": stats.ticks,
        "sampler_cpu_fraction": stats.cpu_s / (metered.wall_s + idle.wall_s),
        "throughput_steps_per_s": {"baseline": baseline_rate, "metered": metered_rate},
        "throughput_overhead": 1.0 - metered_rate / baseline_rate,
        "warmup_steps": warmup_steps,
        "metered": window_report(metered),
        "idle": window_report(idle),
        "short_windows": [window_report(w) for w in windows],
        "short_window_abs_disagreement_max": max(short_disagreements, default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="total training time")
    parser.add_argument("--interval", type=float, default=0.1, help="sampling interval [s]")
    parser.add_argument("--short-window-s", type=float, default=5.0, help="length of the short windows")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("gpu_energy_check.json"))
    parser.add_argument("--simulate", action="store_true", help="simulated GPU on the CPU (dry run)")
    args = parser.parse_args()
    result = run(args)
    write_atomic(args.out, json.dumps(result, indent=2).encode())
    m = result["metered"]
    print(f"{result['gpu']}: {m['energy_j']:.1f} J over {m['wall_s']:.1f} s by {m['method']}, "
          f"disagreement sampled vs counter {m['disagreement']}, short windows max "
          f"{result['short_window_abs_disagreement_max']}, interval {result['interval_s_achieved_mean']:.4f} s, "
          f"sampler CPU {result['sampler_cpu_fraction']:.2%}, throughput overhead "
          f"{result['throughput_overhead']:.2%} -> {args.out}")


if __name__ == "__main__":
    main()
