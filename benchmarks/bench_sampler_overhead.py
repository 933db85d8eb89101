"""Overhead of the energy sampler on CPU training: the same steps with and without it running.

The meter samples one simulated GPU (each NVML call costing ``--call-cost-us``, like a real
driver call) plus the CPU (RAPL where readable, else the CPU-time estimate). Arms alternate so
drift (thermal, other load) hits both alike; the sampler's own CPU time is reported too, as a
noise-free bound on what it takes from training.

    python benchmarks/bench_sampler_overhead.py --seconds 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from chessrec.energy import EnergyMeter
from chessrec.energy.simulated import SimulatedGpu, SimulatedNVML


def make_step() -> Callable[[], None]:
    """One optimiser step of a small convnet on a 64-sample batch of 3x32x32 square crops."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(32, 13),
    )
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 13, (64,))

    def step() -> None:
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()

    return step


def timed(step: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="training time per arm")
    parser.add_argument("--repeats", type=int, default=10, help="alternations of the two arms")
    parser.add_argument("--interval", type=float, default=0.1, help="sampling interval [s] (10 Hz)")
    parser.add_argument("--call-cost-us", type=float, default=100.0, help="simulated NVML call latency")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    step = make_step()
    for _ in range(3):
        step()  # warm up allocator and kernels
    steps = max(1, int(args.seconds / args.repeats / (timed(step, 20) / 20)))
    nvml = SimulatedNVML([SimulatedGpu.constant(250.0)], call_cost_s=args.call_cost_us * 1e-6)

    bare, metered, sampler_cpu, intervals = [], [], [], []
    for _ in range(args.repeats):
        bare.append(timed(step, steps))
        with EnergyMeter(gpu_indices=[0], sample_interval_s=args.interval, nvml=nvml) as meter:
            meter.begin_window("train")
            metered.append(timed(step, steps))
            measurement = meter.end_window("train")
            stats = meter.sampler_stats
        sampler_cpu.append(stats.cpu_s / measurement.wall_s)
        intervals.append(stats.mean_interval_s)

    result = {
        "steps_per_arm_run": steps,
        "repeats": args.repeats,
        "interval_s": args.interval,
        "bare_s_median": statistics.median(bare),
        "metered_s_median": statistics.median(metered),
        "wall_overhead": statistics.median(metered) / statistics.median(bare) - 1.0,
        "paired_overhead_median": statistics.median(m / b - 1.0 for m, b in zip(metered, bare)),
        "paired_overhead_spread": [min(m / b - 1.0 for m, b in zip(metered, bare)),
                                   max(m / b - 1.0 for m, b in zip(metered, bare))],
        "sampler_cpu_fraction": statistics.mean(sampler_cpu),
        "achieved_interval_s": statistics.mean(intervals),
        "cpu_method": measurement.methods.get("cpu"),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
