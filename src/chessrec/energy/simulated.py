"""A simulated NVML with programmable power and faults, standing in for ``pynvml``.

It implements exactly the pynvml calls the meter makes and raises pynvml's own ``NVMLError``
subclasses, so the tests, the overhead benchmark and a dry run of the GPU check script exercise
the real code paths on a machine without a GPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pynvml

NVMLError = pynvml.NVMLError
NVML_ERROR_NO_PERMISSION = pynvml.NVML_ERROR_NO_PERMISSION
NVML_ERROR_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
NVML_ERROR_GPU_IS_LOST = pynvml.NVML_ERROR_GPU_IS_LOST
NVML_ERROR_LIBRARY_NOT_FOUND = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
NVML_ERROR_NOT_FOUND = pynvml.NVML_ERROR_NOT_FOUND


@dataclass
class SimulatedGpu:
    """One GPU: ``power_w(t)`` and its exact integral ``energy_j(t)``, t seconds since nvmlInit.

    ``energy_j=None`` models a pre-Volta GPU without a counter; the ``*_error`` fields make the
    matching call raise that NVML error code; after ``lost_after_s`` every call says GPU lost.
    """

    power_w: Callable[[float], float]
    energy_j: Callable[[float], float] | None
    uuid: str = ""
    mig: bool | None = False  # None: MIG not supported at all
    power_error: int | None = None
    counter_error: int | None = None
    lost_after_s: float | None = None

    @classmethod
    def constant(cls, watts: float, **kwargs: object) -> SimulatedGpu:
        return cls(lambda t: watts, lambda t: watts * t, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def ramp(cls, start_w: float, watts_per_s: float, **kwargs: object) -> SimulatedGpu:
        return cls(
            lambda t: start_w + watts_per_s * t,
            lambda t: start_w * t + watts_per_s * t * t / 2.0,
            **kwargs,  # type: ignore[arg-type]
        )


class SimulatedNVML:
    """Module-like object: pass it as ``EnergyMeter(nvml=SimulatedNVML([...]))``.

    ``call_cost_s`` sleeps in every device query (releasing the GIL like the real ctypes call),
    to measure the sampler's overhead with a realistic driver latency.
    """

    NVMLError = NVMLError

    def __init__(
        self,
        gpus: Sequence[SimulatedGpu],
        init_error: int | None = None,
        call_cost_s: float = 0.0,
    ) -> None:
        self.gpus = list(gpus)
        for index, gpu in enumerate(self.gpus):
            gpu.uuid = gpu.uuid or f"GPU-{index:08x}-5eed-4a11-9e57-{index:012x}"
        self.init_error = init_error
        self.call_cost_s = call_cost_s
        self.calls: dict[str, int] = {}
        self.initialised = 0
        self._t0 = time.perf_counter()

    # -- the pynvml API --------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._count("nvmlInit")
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised += 1
        self._t0 = time.perf_counter()

    def nvmlShutdown(self) -> None:
        self._count("nvmlShutdown")
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._count("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimulatedGpu:
        self._count("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> SimulatedGpu:
        self._count("nvmlDeviceGetHandleByUUID")
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return gpu
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, handle: SimulatedGpu) -> str:
        self._count("nvmlDeviceGetUUID")
        return handle.uuid

    def nvmlDeviceGetMigMode(self, handle: SimulatedGpu) -> list[int]:
        self._count("nvmlDeviceGetMigMode")
        if handle.mig is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [int(handle.mig), int(handle.mig)]

    def nvmlDeviceGetPowerUsage(self, handle: SimulatedGpu) -> int:
        """Milliwatts, as NVML reports them."""
        t = self._query("nvmlDeviceGetPowerUsage", handle, handle.power_error)
        return int(round(handle.power_w(t) * 1000.0))

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: SimulatedGpu) -> int:
        """Millijoules since initialisation, as NVML reports them (since driver load)."""
        t = self._query("nvmlDeviceGetTotalEnergyConsumption", handle, handle.counter_error)
        if handle.energy_j is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return int(round(handle.energy_j(t) * 1000.0))

    # -- helpers ---------------------------------------------------------------------------

    def _count(self, call: str) -> None:
        self.calls[call] = self.calls.get(call, 0) + 1

    def _query(self, call: str, handle: SimulatedGpu, error: int | None) -> float:
        self._count(call)
        if self.initialised <= 0:
            raise NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        if self.call_cost_s:
            time.sleep(self.call_cost_s)
        t = time.perf_counter() - self._t0
        if handle.lost_after_s is not None and t >= handle.lost_after_s:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        if error is not None:
            raise NVMLError(error)
        return t
