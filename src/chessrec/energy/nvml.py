"""GPU energy through NVML (``pynvml`` from nvidia-ml-py), degrading instead of failing.

Energy comes from the total-energy counter where the GPU has one (Volta and newer); power is
sampled on every tick regardless, so a window has a figure even when the counter is missing or
the GPU is lost, and the two can be compared where both exist.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chessrec.energy.measurement import NVML_COUNTER, NVML_SAMPLED, UNAVAILABLE, PowerSeries, integrate
from chessrec.energy.source import DeviceResult, FaultHandler

# NVML return codes and constants, fixed by the nvml.h ABI (mirrored so a fake NVML need not define them).
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_DEVICE_MIG_ENABLE = 1


def visible_devices(value: str | None) -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` tokens as the CUDA runtime reads them; None when unset (all GPUs).

    Like CUDA, parsing stops at the first token that is not an index or UUID (``"0,-1,2"`` makes
    only GPU 0 visible) or that repeats an earlier one; an empty string hides every GPU.
    """
    if value is None:
        return None
    tokens: list[str] = []
    for token in (t.strip() for t in value.split(",")):
        valid = token.isdigit() or token.startswith(("GPU-", "MIG-"))
        if not valid or token in tokens:
            break
        tokens.append(token)
    return tokens


@dataclass
class GpuSource:
    """One GPU, keyed by its CUDA ordinal (``gpu:<n>``, as torch numbers it)."""

    key: str
    nvml: Any
    handle: Any
    has_counter: bool
    on_fault: FaultHandler
    series: PowerSeries = field(default_factory=list)
    lost: bool = False

    def sample(self, t: float) -> None:
        if self.lost:
            return
        try:
            self.series.append((t, self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0))
        except self.nvml.NVMLError as exc:
            self._lose(f"power reading failed ({exc})")

    def snapshot(self, t: float) -> float | None:
        """The counter in joules, or None without one (or after the GPU was lost)."""
        if self.lost or not self.has_counter:
            return None
        try:
            return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0
        except self.nvml.NVMLError as exc:
            self._lose(f"energy counter failed ({exc})")
            return None

    def result(self, start: float | None, end: float | None, t0: float, t1: float) -> DeviceResult:
        sampled = integrate(self.series, t0, t1) if _sampled_span(self.series, t0, t1) else None
        if start is not None and end is not None:
            counter = end - start
            disagreement = (sampled - counter) / counter if sampled is not None and counter > 0 else None
            return DeviceResult(NVML_COUNTER, counter, disagreement)
        if sampled is not None:
            return DeviceResult(NVML_SAMPLED, sampled)
        return DeviceResult(UNAVAILABLE, None)

    def close(self) -> None:
        """Handles need no release; NVML itself is shut down by :class:`NvmlSession`."""

    def _lose(self, reason: str) -> None:
        self.lost = True
        self.on_fault(f"{self.key}: {reason}; its figure stops at the last good reading")


def _sampled_span(series: PowerSeries, t0: float, t1: float) -> bool:
    return sum(1 for t, _ in series if t0 <= t <= t1) >= 2


@dataclass
class NvmlSession:
    """NVML initialised once for a meter, and the GPU sources opened through it."""

    nvml: Any | None
    sources: list[GpuSource]

    def close(self) -> None:
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except self.nvml.NVMLError:
                pass  # shutting down a library that has already failed is not news


def open_gpus(
    nvml: Any | None,
    cuda_ordinals: list[int] | None,
    env: Mapping[str, str],
    on_fault: FaultHandler,
) -> NvmlSession:
    """Open the GPUs this process uses: ``cuda_ordinals`` (None: every visible GPU).

    Ordinals are positions in ``CUDA_VISIBLE_DEVICES`` (what ``torch.device("cuda", n)``
    means), mapped to NVML devices by index or (abbreviated) UUID. Every GPU that cannot be
    measured is reported through ``on_fault`` and skipped; a missing NVML is only a fault
    when GPUs were asked for or made visible explicitly.
    """
    tokens = visible_devices(env.get("CUDA_VISIBLE_DEVICES"))
    expected = bool(cuda_ordinals) if cuda_ordinals is not None else bool(tokens)
    if cuda_ordinals == [] or tokens == []:
        if expected:
            on_fault("GPU energy not measured: CUDA_VISIBLE_DEVICES hides every GPU")
        return NvmlSession(None, [])
    try:
        nvml = nvml if nvml is not None else importlib.import_module("pynvml")
    except ImportError:
        if expected:
            on_fault("GPU energy not measured: the pynvml module (nvidia-ml-py) is not installed")
        return NvmlSession(None, [])
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        if expected:
            on_fault(f"GPU energy not measured: NVML failed to initialise ({exc})")
        return NvmlSession(None, [])
    if tokens is None:
        tokens = [str(i) for i in range(nvml.nvmlDeviceGetCount())]
    ordinals = cuda_ordinals if cuda_ordinals is not None else list(range(len(tokens)))
    sources = []
    for ordinal in ordinals:
        source = _open_gpu(nvml, ordinal, tokens, on_fault)
        if source is not None:
            sources.append(source)
    return NvmlSession(nvml, sources)


def _open_gpu(nvml: Any, ordinal: int, tokens: list[str], on_fault: FaultHandler) -> GpuSource | None:
    key = f"gpu:{ordinal}"
    if not 0 <= ordinal < len(tokens):
        on_fault(f"{key}: not measured, only {len(tokens)} GPU(s) are visible to this process")
        return None
    token = tokens[ordinal]
    if token.startswith("MIG-"):
        on_fault(f"{key}: not measured, {token} is a MIG instance and NVML reports power per whole GPU")
        return None
    try:
        handle = _handle(nvml, token)
        if _mig_enabled(nvml, handle):
            on_fault(f"{key}: not measured, MIG is enabled and NVML reports power per whole GPU")
            return None
        nvml.nvmlDeviceGetPowerUsage(handle)
    except (nvml.NVMLError, LookupError) as exc:
        on_fault(f"{key}: not measured, NVML could not read GPU {token} ({exc})")
        return None
    has_counter = True
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except nvml.NVMLError as exc:
        has_counter = False
        if exc.value != NVML_ERROR_NOT_SUPPORTED:  # pre-Volta GPUs simply have no counter
            on_fault(f"{key}: energy counter unreadable ({exc}); energy is integrated from power samples")
    return GpuSource(key, nvml, handle, has_counter, on_fault)


def _handle(nvml: Any, token: str) -> Any:
    if token.isdigit():
        return nvml.nvmlDeviceGetHandleByIndex(int(token))
    try:
        return nvml.nvmlDeviceGetHandleByUUID(token)
    except nvml.NVMLError as exc:
        if exc.value not in (NVML_ERROR_NOT_FOUND, NVML_ERROR_INVALID_ARGUMENT):
            raise
    # CUDA accepts any unambiguous UUID prefix; NVML wants the full UUID.
    matches = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        uuid = nvml.nvmlDeviceGetUUID(handle)
        if (uuid.decode() if isinstance(uuid, bytes) else uuid).startswith(token):
            matches.append(handle)
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} GPUs match UUID prefix {token}")
    return matches[0]


def _mig_enabled(nvml: Any, handle: Any) -> bool:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml.NVMLError as exc:
        if exc.value == NVML_ERROR_NOT_SUPPORTED:  # GPUs without MIG support
            return False
        raise
    return current == NVML_DEVICE_MIG_ENABLE
