"""Energy measurement: named windows over GPUs (NVML) and the CPU (RAPL or a labelled estimate).

``EnergyCallback`` (a Lightning callback) is imported on first use, so measuring inference does
not pull in Lightning.
"""

from __future__ import annotations

from typing import Any

from chessrec.energy.measurement import EnergyWarning, Measurement
from chessrec.energy.meter import EnergyMeter, SamplerStats

__all__ = ["EnergyCallback", "EnergyMeter", "EnergyWarning", "Measurement", "SamplerStats"]


def __getattr__(name: str) -> Any:
    if name == "EnergyCallback":
        from chessrec.energy.callback import EnergyCallback

        return EnergyCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
