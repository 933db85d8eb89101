"""A machine-speed reference: one fixed workload, timed beside every figure that is a time.

These machines run up to 2.4x slower on some days; a time alone cannot tell a slow machine from
a slow change.  The reference is a fixed single-thread torch workload (a small conv net's forward
and backward on a fixed batch, the kind of work training and inference do here), so a reported
time can be read as a ratio to it: ``time / reference_ms`` moves only when the code does.
"""

from __future__ import annotations

import time

#: what the reference runs, in words, for tables that print it
DESCRIPTION = "fixed 1-thread torch conv workload (forward + backward, 64 x 3 x 64 x 32), median of 5"


def reference_ms(repeats: int = 5) -> float:
    """Median milliseconds of the fixed workload on one thread (the caller's thread count is restored)."""
    import torch
    from torch import nn

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                            nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                            nn.Linear(64, 13))
        x = torch.rand((64, 3, 64, 32), generator=generator)
        net(x).sum().backward()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            net.zero_grad()
            net(x).sum().backward()
            times.append(time.perf_counter() - start)
        return 1e3 * sorted(times)[len(times) // 2]
    finally:
        torch.set_num_threads(before)
