"""A simulated NVML: scripted GPUs behind the subset of the ``pynvml`` API we call.

Shipped in the package so that users and tests fake the same seam the real code
reads: pass a :class:`SimulatedNvml` wherever an ``nvml=`` module is taken::

    clock = ManualClock()
    nvml = SimulatedNvml([SimulatedGpu("NVIDIA H100", "GPU-0a1b", power_w=150.0)], clock=clock)
    sampler = NvmlSampler(["cuda:0"], nvml=nvml, clock=clock, poll_interval_s=None)

Script time ``t`` is seconds since the :class:`SimulatedNvml` was built, on its
``clock``. Every scripted quantity is a constant or a function of ``t``. The
total-energy counter is the integral of the power script (exact for constants,
composite Simpson with a 1 ms step otherwise), in whole millijoules, as NVML
reports it. Values come back in NVML's units and types: mW, mJ, °C, MHz and
percent as ints, memory in bytes, names and UUIDs as ``str``.
"""

# The pynvml names (nvmlDeviceGetCount, NVMLError_NotSupported, ...) are kept verbatim:
# matching them is the point of this module.
# ruff: noqa: N801, N802, N815, N818

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

__all__ = [
    "ManualClock",
    "NVMLError",
    "NVMLError_DriverNotLoaded",
    "NVMLError_FunctionNotFound",
    "NVMLError_GpuIsLost",
    "NVMLError_InvalidArgument",
    "NVMLError_LibraryNotFound",
    "NVMLError_NoPermission",
    "NVMLError_NotSupported",
    "NVMLError_Uninitialized",
    "NVMLError_Unknown",
    "SimulatedGpu",
    "SimulatedHandle",
    "SimulatedNvml",
]

_MIB = 1024 * 1024


class NVMLError(Exception):
    """Root of the simulated NVML errors; ``value`` is the NVML return code."""

    VALUE: ClassVar[int] = 999
    TEXT: ClassVar[str] = "Unknown Error"

    def __init__(self, value: int | None = None) -> None:
        self.value = self.VALUE if value is None else value
        super().__init__(self.value)

    def __str__(self) -> str:
        return self.TEXT


class NVMLError_Uninitialized(NVMLError):
    """A call before ``nvmlInit`` (or after the matching ``nvmlShutdown``)."""

    VALUE = 1
    TEXT = "Uninitialized"


class NVMLError_InvalidArgument(NVMLError):
    """A bad device index or handle."""

    VALUE = 2
    TEXT = "Invalid Argument"


class NVMLError_NotSupported(NVMLError):
    """The device lacks the feature (e.g. no total-energy counter before Volta)."""

    VALUE = 3
    TEXT = "Not Supported"


class NVMLError_NoPermission(NVMLError):
    """The call needs privileges the process does not have."""

    VALUE = 4
    TEXT = "Insufficient Permissions"


class NVMLError_DriverNotLoaded(NVMLError):
    """The NVIDIA kernel driver is not running."""

    VALUE = 9
    TEXT = "Driver Not Loaded"


class NVMLError_LibraryNotFound(NVMLError):
    """libnvidia-ml.so could not be found."""

    VALUE = 12
    TEXT = "NVML Shared Library Not Found"


class NVMLError_FunctionNotFound(NVMLError):
    """The installed driver lacks this NVML function."""

    VALUE = 13
    TEXT = "Function Not Found"


class NVMLError_GpuIsLost(NVMLError):
    """The GPU fell off the bus or otherwise stopped answering."""

    VALUE = 15
    TEXT = "GPU is lost"


class NVMLError_Unknown(NVMLError):
    """Any other failure."""


# The error root under a second name: inside SimulatedNvml, ``NVMLError`` is the attribute.
_NVMLErrorRoot: TypeAlias = NVMLError


class ManualClock:
    """A clock that only moves when told to: ``clock.advance(1.5)`` or ``clock.set(12.0)``."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds``; returns the new time."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        self.now_s += seconds
        return self.now_s

    def set(self, now_s: float) -> None:
        """Jump to ``now_s`` (not earlier than the current time)."""
        if now_s < self.now_s:
            raise ValueError(f"a clock does not go back ({self.now_s} s -> {now_s} s)")
        self.now_s = now_s


Script = Callable[[float], float] | float


@dataclass(frozen=True)
class SimulatedGpu:
    """One scripted GPU. Quantities are constants or functions of script time ``t`` (s).

    ``has_energy_counter=False`` makes the total-energy counter answer
    ``NVMLError_NotSupported`` (pre-Volta GPUs). From ``t >= fail_after_s`` every
    query on this GPU raises ``fail_with`` (the GPU was lost mid-run).
    ``mig_mode`` / ``ecc_enabled`` of None mean the GPU does not support the feature.
    """

    name: str
    uuid: str
    power_w: Script = 100.0
    has_energy_counter: bool = True
    temperature_c: Script = 45.0
    sm_clock_mhz: Script = 1980.0
    utilisation_pct: Script = 0.0
    memory_used_mib: Script = 0.0
    memory_total_mib: int = 81_559
    throttle_reasons: Callable[[float], int] | int = 0
    fail_after_s: float | None = None
    fail_with: type[NVMLError] = NVMLError_GpuIsLost
    energy_counter_start_mj: int = 0
    power_limit_w: float = 700.0
    default_power_limit_w: float = 700.0
    persistence_mode: bool = True
    mig_mode: bool | None = False
    ecc_enabled: bool | None = True
    compute_capability: tuple[int, int] = (9, 0)


@dataclass(frozen=True)
class SimulatedHandle:
    """What ``nvmlDeviceGetHandleByIndex`` returns: the GPU's index."""

    index: int


@dataclass(frozen=True)
class _Utilization:
    gpu: int
    memory: int


@dataclass(frozen=True)
class _Memory:
    total: int
    used: int
    free: int


class SimulatedNvml:
    """A module-like object offering the pynvml calls llenergymeasure makes, on scripted GPUs.

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
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost
    NVMLError_Unknown = NVMLError_Unknown

    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_GRAPHICS = 0
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_FEATURE_DISABLED = 0
    NVML_FEATURE_ENABLED = 1
    NVML_DEVICE_MIG_DISABLE = 0
    NVML_DEVICE_MIG_ENABLE = 1

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
        init_error: type[_NVMLErrorRoot] | None = None,
        integration_step_s: float = 1e-3,
    ) -> None:
        self.gpus = tuple(gpus)
        self.driver_version = driver_version
        self.init_error = init_error
        self._clock = clock
        self._origin_s = clock()
        self._step_s = integration_step_s
        self._lock = threading.Lock()
        self._init_count = 0
        # per GPU: (script time integrated up to, joules up to then)
        self._integrated = [(0.0, 0.0) for _ in self.gpus]

    @property
    def init_count(self) -> int:
        """How many ``nvmlInit`` calls are not yet matched by ``nvmlShutdown``."""
        return self._init_count

    def now_s(self) -> float:
        """Script time: seconds since this simulation was built."""
        return max(0.0, self._clock() - self._origin_s)

    def energy_j(self, index: int, t: float) -> float:
        """The ground truth: joules GPU ``index`` used between script time 0 and ``t``."""
        power = self.gpus[index].power_w
        if not callable(power):
            return power * t
        with self._lock:
            done_s, done_j = self._integrated[index]
            if t < done_s:  # another thread already asked about a later time
                return done_j - _simpson(power, t, done_s, self._step_s)
            done_j += _simpson(power, done_s, t, self._step_s)
            self._integrated[index] = (t, done_j)
            return done_j

    # --- library ---------------------------------------------------------------------

    def nvmlInit(self) -> None:
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

    def nvmlDeviceGetMemoryInfo(self, handle: SimulatedHandle) -> _Memory:
        gpu, t = self._gpu(handle), self.now_s()
        total = gpu.memory_total_mib * _MIB
        used = min(total, round(_at(gpu.memory_used_mib, t) * _MIB))
        return _Memory(total=total, used=used, free=total - used)

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

    # --- readings --------------------------------------------------------------------

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: SimulatedHandle) -> int:
        gpu = self._gpu(handle)
        if not gpu.has_energy_counter:
            raise NVMLError_NotSupported()
        return gpu.energy_counter_start_mj + math.floor(
            self.energy_j(handle.index, self.now_s()) * 1000
        )

    def nvmlDeviceGetPowerUsage(self, handle: SimulatedHandle) -> int:
        return round(_at(self._gpu(handle).power_w, self.now_s()) * 1000)

    def nvmlDeviceGetTemperature(self, handle: SimulatedHandle, sensor: int) -> int:
        gpu = self._gpu(handle)
        if sensor != self.NVML_TEMPERATURE_GPU:
            raise NVMLError_InvalidArgument()
        return round(_at(gpu.temperature_c, self.now_s()))

    def nvmlDeviceGetClockInfo(self, handle: SimulatedHandle, clock_type: int) -> int:
        gpu = self._gpu(handle)
        if clock_type != self.NVML_CLOCK_SM:
            raise NVMLError_NotSupported()
        return round(_at(gpu.sm_clock_mhz, self.now_s()))

    def nvmlDeviceGetUtilizationRates(self, handle: SimulatedHandle) -> _Utilization:
        gpu = self._gpu(handle)
        pct = round(_at(gpu.utilisation_pct, self.now_s()))
        return _Utilization(gpu=pct, memory=pct)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: SimulatedHandle) -> int:
        reasons = self._gpu(handle).throttle_reasons
        return reasons(self.now_s()) if callable(reasons) else reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: SimulatedHandle) -> int:
        return self.nvmlDeviceGetCurrentClocksEventReasons(handle)

    # --- internals -------------------------------------------------------------------

    def _check_init(self) -> None:
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


def _at(script: Script, t: float) -> float:
    return float(script(t)) if callable(script) else float(script)


def _simpson(f: Callable[[float], float], a: float, b: float, step_s: float) -> float:
    """Composite Simpson integral of ``f`` over [a, b] with at most ``step_s`` per interval."""
    if b <= a:
        return 0.0
    n = max(2, math.ceil((b - a) / step_s))
    n += n % 2
    h = (b - a) / n
    odd = sum(f(a + k * h) for k in range(1, n, 2))
    even = sum(f(a + k * h) for k in range(2, n, 2))
    return h / 3 * (f(a) + f(b) + 4 * odd + 2 * even)
