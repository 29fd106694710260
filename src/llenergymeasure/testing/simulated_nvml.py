"""A simulated NVML: simulated GPUs behind the subset of the ``pynvml`` API llem calls.

Shipped in the package so that users and tests fake the same seam the real code
reads: pass a :class:`SimulatedNvml` wherever an ``nvml=`` module is taken::

    clock = ManualClock()
    nvml = SimulatedNvml([h200("GPU-0a1b")], clock=clock)
    sampler = NvmlSampler(["cuda:0"], nvml=nvml, clock=clock, poll_interval_s=None)

It behaves as NVML did on a real H200 (``testing/simulated_gpu.py`` says how, and
``testing/h200.py`` holds the calibration): readings step every ~100 ms, power usage is
a 1 s moving average, instant power comes through ``nvmlDeviceGetFieldValues``, the board
idles higher once a process opens a CUDA context (:meth:`SimulatedNvml.open_context`),
and every call takes ``call_latency_s`` (~1 ms; on a :class:`ManualClock` the call moves
the clock). Values come back in NVML's units and pynvml's types: mW, mJ, °C, MHz and
percent as ints, memory in bytes, names and UUIDs as ``str``, durations in ns, and
structures as pynvml's own ctypes structures (``testing/simulated_nvml_records.py``).
``omit`` hides NVML functions, as an older driver or an incomplete stand-in would.
"""

# The pynvml names (nvmlDeviceGetCount, NVML_FI_DEV_POWER_INSTANT, ...) are kept verbatim:
# matching them is the point of this module.
# ruff: noqa: N802, N815

from __future__ import annotations

import ctypes
import functools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from llenergymeasure.testing import simulated_nvml_errors
from llenergymeasure.testing.simulated_gpu import GpuPhysics, SimulatedGpu
from llenergymeasure.testing.simulated_nvml_errors import (
    NVMLError,
    NVMLError_DriverNotLoaded,
    NVMLError_FunctionNotFound,
    NVMLError_GpuIsLost,
    NVMLError_InvalidArgument,
    NVMLError_LibraryNotFound,
    NVMLError_NoPermission,
    NVMLError_NotFound,
    NVMLError_NotSupported,
    NVMLError_Uninitialized,
    NVMLError_Unknown,
)
from llenergymeasure.testing.simulated_nvml_records import (
    ManualClock,
    SimulatedHandle,
    field_value,
    nvidia_ml_py,
    process_info,
)

if TYPE_CHECKING:
    import pynvml

__all__ = [
    "ManualClock",
    "SimulatedGpu",
    "SimulatedHandle",
    "SimulatedNvml",
    *simulated_nvml_errors.__all__,
]

_MIB = 1024 * 1024
_T = TypeVar("_T")
# The error root under a second name: inside SimulatedNvml, ``NVMLError`` is the attribute.
_NVMLErrorRoot: TypeAlias = NVMLError


class SimulatedNvml:
    """A module-like object offering the pynvml calls llenergymeasure makes, on simulated GPUs.

    Like NVML, ``nvmlInit`` is reference-counted and every query before it raises
    ``NVMLError_Uninitialized``; ``init_count`` lets tests check that callers shut
    down what they initialised. ``init_error`` makes ``nvmlInit`` fail (e.g.
    ``NVMLError_DriverNotLoaded``). Safe to call from several threads.
    """

    NVMLError = NVMLError
    NVMLError_Uninitialized = NVMLError_Uninitialized
    NVMLError_InvalidArgument = NVMLError_InvalidArgument
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NoPermission = NVMLError_NoPermission
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost
    NVMLError_Unknown = NVMLError_Unknown

    NVML_SUCCESS = 0
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_GRAPHICS = 0
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_FEATURE_DISABLED = 0
    NVML_FEATURE_ENABLED = 1
    NVML_VALUE_TYPE_DOUBLE = 0
    NVML_VALUE_TYPE_UNSIGNED_INT = 1
    NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3
    # Field ids as nvidia-ml-py 13 numbers them.
    NVML_FI_DEV_PERF_POLICY_POWER = 74
    NVML_FI_DEV_PERF_POLICY_SYNC_BOOST = 76
    NVML_FI_DEV_POWER_AVERAGE = 185
    NVML_FI_DEV_POWER_INSTANT = 186
    NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP = 74
    NVML_FI_DEV_CLOCKS_EVENT_REASON_SYNC_BOOST = 76
    NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN = 269
    NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN = 270
    NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN = 271

    nvmlClocksEventReasonGpuIdle = 0x1
    nvmlClocksEventReasonApplicationsClocksSetting = 0x2
    nvmlClocksEventReasonSwPowerCap = 0x4
    nvmlClocksEventReasonHwSlowdown = 0x8
    nvmlClocksEventReasonSyncBoost = 0x10
    nvmlClocksEventReasonSwThermalSlowdown = 0x20
    nvmlClocksEventReasonHwThermalSlowdown = 0x40
    nvmlClocksEventReasonHwPowerBrakeSlowdown = 0x80
    nvmlClocksEventReasonDisplayClockSetting = 0x100
    nvmlClocksThrottleReasonGpuIdle = 0x1
    nvmlClocksThrottleReasonApplicationsClocksSetting = 0x2
    nvmlClocksThrottleReasonSwPowerCap = 0x4
    nvmlClocksThrottleReasonHwSlowdown = 0x8
    nvmlClocksThrottleReasonSyncBoost = 0x10
    nvmlClocksThrottleReasonSwThermalSlowdown = 0x20
    nvmlClocksThrottleReasonHwThermalSlowdown = 0x40
    nvmlClocksThrottleReasonHwPowerBrakeSlowdown = 0x80
    nvmlClocksThrottleReasonDisplayClockSetting = 0x100

    def __init__(
        self,
        gpus: Sequence[SimulatedGpu],
        *,
        clock: Callable[[], float] = time.monotonic,
        driver_version: str = "550.54.15",
        cuda_driver_version: int = 12040,
        init_error: type[_NVMLErrorRoot] | None = None,
        integration_step_s: float = 1e-3,
        call_latency_s: float = 0.001,
        omit: Iterable[str] = (),
    ) -> None:
        self.gpus = tuple(gpus)
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.init_error = init_error
        self.call_latency_s = call_latency_s
        self._omitted = frozenset(omit)
        self._clock = clock
        self._origin_s = clock()
        self._lock = threading.RLock()
        self._init_count = 0
        self._physics = [
            GpuPhysics(functools.partial(self._spec, i), integration_step_s)
            for i in range(len(self.gpus))
        ]
        self._process_names: dict[int, str] = {}
        self._pynvml = nvidia_ml_py()  # for its structures: what pynvml hands back

    def __getattribute__(self, name: str) -> Any:
        # An omitted function is absent, as in a pynvml or driver that predates it.
        if name.startswith("nvml") and name in object.__getattribute__(self, "_omitted"):
            raise AttributeError(f"this NVML has no {name}")
        return object.__getattribute__(self, name)

    @property
    def init_count(self) -> int:
        """How many ``nvmlInit`` calls are not yet matched by ``nvmlShutdown``."""
        return self._init_count

    def now_s(self) -> float:
        """Script time: seconds since this simulation was built."""
        return max(0.0, self._clock() - self._origin_s)

    def energy_j(self, index: int, t: float) -> float:
        """The ground truth: joules GPU ``index`` used between script time 0 and ``t``."""
        with self._lock:
            return self._physics[index].energy_j(t)

    def power_w(self, index: int, t: float) -> float:
        """The ground truth: GPU ``index``'s power at script time ``t``."""
        with self._lock:
            return self._physics[index].power_w(t)

    # --- what a process does to the GPUs ----------------------------------------------

    def open_context(
        self, index: int, *, pid: int | None = None, name: str = "python", used_mib: float = 0.0
    ) -> int:
        """A process (this one by default) opens a CUDA context on GPU ``index``; its id."""
        pid = os.getpid() if pid is None else pid
        with self._lock:
            self._process_names[pid] = name
            return self._physics[index].open_context(self.now_s(), pid, used_mib)

    def close_context(self, index: int, context: int) -> None:
        """Close a context :meth:`open_context` opened."""
        with self._lock:
            self._physics[index].close_context(self.now_s(), context)

    def set_busy(self, index: int, busy: bool) -> None:
        """Work starts (True) or stops on GPU ``index``."""
        with self._lock:
            self._physics[index].set_busy(self.now_s(), busy)

    @contextmanager
    def busy(self, index: int) -> Iterator[None]:
        """GPU ``index`` is busy inside the block."""
        self.set_busy(index, True)
        try:
            yield
        finally:
            self.set_busy(index, False)

    # --- library ---------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._pause()
        if self.init_error is not None:
            raise self.init_error()
        with self._lock:
            self._init_count += 1

    def nvmlShutdown(self) -> None:
        with self._lock:
            if self._init_count == 0:
                raise NVMLError_Uninitialized()
            self._init_count -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check_init()
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._check_init()
        return self.cuda_driver_version

    def nvmlSystemGetProcessName(self, pid: int) -> str:
        self._check_init()
        if pid not in self._process_names:
            raise NVMLError_NotFound()
        return self._process_names[pid]

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimulatedHandle:
        self._check_init()
        if not 0 <= index < len(self.gpus):
            raise NVMLError_InvalidArgument()
        return SimulatedHandle(index)

    # --- identity and configuration --------------------------------------------------

    def nvmlDeviceGetName(self, handle: SimulatedHandle) -> str:
        return self._gpu(handle).name

    def nvmlDeviceGetUUID(self, handle: SimulatedHandle) -> str:
        return self._gpu(handle).uuid

    def nvmlDeviceGetMemoryInfo(self, handle: SimulatedHandle) -> pynvml.c_nvmlMemory_t:
        gpu = self._gpu(handle)
        total = gpu.memory_total_mib * _MIB
        used = min(total, round(self._now(handle, GpuPhysics.memory_used_mib) * _MIB))
        return self._pynvml.c_nvmlMemory_t(total=total, free=total - used, used=used)

    def nvmlDeviceGetPowerManagementLimit(self, handle: SimulatedHandle) -> int:
        return round(self._gpu(handle).power_limit_w * 1000)

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: SimulatedHandle) -> int:
        return round(self._gpu(handle).default_power_limit_w * 1000)

    def nvmlDeviceGetPersistenceMode(self, handle: SimulatedHandle) -> int:
        return int(self._gpu(handle).persistence_mode)

    def nvmlDeviceGetMigMode(self, handle: SimulatedHandle) -> tuple[int, int]:
        mode = self._gpu(handle).mig_mode
        if mode is None:
            raise NVMLError_NotSupported()
        return int(mode), int(mode)

    def nvmlDeviceGetEccMode(self, handle: SimulatedHandle) -> tuple[int, int]:
        mode = self._gpu(handle).ecc_enabled
        if mode is None:
            raise NVMLError_NotSupported()
        return int(mode), int(mode)

    def nvmlDeviceGetCudaComputeCapability(self, handle: SimulatedHandle) -> tuple[int, int]:
        return self._gpu(handle).compute_capability

    def nvmlDeviceGetComputeRunningProcesses(
        self, handle: SimulatedHandle
    ) -> list[pynvml.nvmlFriendlyObject]:
        self._gpu(handle)
        with self._lock:
            listed = self._physics[handle.index].processes()
        return [process_info(self._pynvml, pid, round(mib * _MIB)) for pid, mib in listed]

    # --- readings --------------------------------------------------------------------

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: SimulatedHandle) -> int:
        if not self._gpu(handle).has_energy_counter:
            raise NVMLError_NotSupported()
        return int(self._now(handle, GpuPhysics.counter_mj))

    def nvmlDeviceGetPowerUsage(self, handle: SimulatedHandle) -> int:
        return round(self._read(handle, GpuPhysics.average_w) * 1000)

    def nvmlDeviceGetFieldValues(
        self, handle: SimulatedHandle, field_ids: Sequence[int | tuple[int, int]]
    ) -> ctypes.Array[pynvml.c_nvmlFieldValue_t]:
        self._gpu(handle)
        values: ctypes.Array[pynvml.c_nvmlFieldValue_t]
        values = (self._pynvml.c_nvmlFieldValue_t * len(field_ids))()
        for value, requested in zip(values, field_ids, strict=True):
            # as pynvml asks: a field id, or a (field id, scope id) pair
            value.fieldId, value.scopeId = (
                requested if isinstance(requested, tuple) else (requested, 0)
            )
        t = self.now_s()
        with self._lock:
            physics = self._physics[handle.index]
            for value in values:
                field_value(value, physics, t)
        return values

    def nvmlDeviceGetTemperature(self, handle: SimulatedHandle, sensor: int) -> int:
        self._gpu(handle)
        if sensor != self.NVML_TEMPERATURE_GPU:
            raise NVMLError_InvalidArgument()
        return round(self._now(handle, GpuPhysics.temperature_c))

    def nvmlDeviceGetClockInfo(self, handle: SimulatedHandle, clock_type: int) -> int:
        self._gpu(handle)
        if clock_type != self.NVML_CLOCK_SM:
            raise NVMLError_NotSupported()
        return round(self._now(handle, GpuPhysics.sm_clock_mhz))

    def nvmlDeviceGetUtilizationRates(self, handle: SimulatedHandle) -> pynvml.c_nvmlUtilization_t:
        pct = round(self._read(handle, GpuPhysics.utilisation_pct))
        return self._pynvml.c_nvmlUtilization_t(gpu=pct, memory=pct)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: SimulatedHandle) -> int:
        return int(self._read(handle, GpuPhysics.reasons))

    nvmlDeviceGetCurrentClocksThrottleReasons = nvmlDeviceGetCurrentClocksEventReasons

    # --- internals -------------------------------------------------------------------

    def _pause(self) -> None:
        """The time an NVML call takes: real time, or a manual clock's."""
        if self.call_latency_s <= 0:
            return
        advance = getattr(self._clock, "advance", None)
        if callable(advance):
            advance(self.call_latency_s)
        else:
            time.sleep(self.call_latency_s)

    def _check_init(self) -> None:
        self._pause()
        if self._init_count == 0:
            raise NVMLError_Uninitialized()

    def _gpu(self, handle: SimulatedHandle) -> SimulatedGpu:
        self._check_init()
        if not isinstance(handle, SimulatedHandle) or not 0 <= handle.index < len(self.gpus):
            raise NVMLError_InvalidArgument()
        gpu = self.gpus[handle.index]
        if gpu.fail_after_s is not None and self.now_s() >= gpu.fail_after_s:
            raise gpu.fail_with()
        return gpu

    def _spec(self, index: int) -> SimulatedGpu:
        # read each time: a test may swap a GPU's script mid-run (``nvml.gpus = ...``)
        return self.gpus[index]

    def _read(self, handle: SimulatedHandle, reading: Callable[[GpuPhysics, float], _T]) -> _T:
        """One call: check the handle, then read the GPU now."""
        self._gpu(handle)
        return self._now(handle, reading)

    def _now(self, handle: SimulatedHandle, reading: Callable[[GpuPhysics, float], _T]) -> _T:
        t = self.now_s()
        with self._lock:
            return reading(self._physics[handle.index], t)
