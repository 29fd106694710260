"""The host's NVIDIA GPUs as NVML reports them, and the warnings their settings call for.

Read-only facts for the environment snapshot, pre-flight and ``llem doctor``: names,
UUIDs, memory (total and free), power limits, clocks, persistence, MIG and ECC modes,
compute capability, and the processes holding a CUDA context. Each fact is read on its
own; one NVML refuses, or asks of a function the module lacks (an older driver, an
incomplete stand-in), is None. pynvml is imported only when :func:`list_gpus` runs, and
``nvml=`` takes any object with the same calls (such as
:class:`~llenergymeasure.testing.simulated_nvml.SimulatedNvml`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

__all__ = [
    "PYNVML_MISSING",
    "GpuInfo",
    "GpuProcess",
    "GpuSurvey",
    "gpu_warnings",
    "list_gpus",
    "survey_gpus",
]

PYNVML_MISSING = "pynvml not installed: pip install nvidia-ml-py"

_MIB = 1024 * 1024
# Power limits are set in whole watts; below this the limit is "the default".
_POWER_LIMIT_TOLERANCE_W = 0.5


@dataclass(frozen=True)
class GpuProcess:
    """A process holding a CUDA context on a GPU."""

    pid: int
    used_mib: float | None
    name: str | None


@dataclass(frozen=True)
class GpuInfo:
    """One GPU: identity, settings and state, each None where NVML would not say."""

    index: int
    name: str
    uuid: str
    memory_total_mib: float | None
    power_limit_w: float | None
    default_power_limit_w: float | None
    persistence_mode: bool | None
    mig_mode: bool | None
    ecc_enabled: bool | None
    compute_capability: tuple[int, int] | None
    sm_clock_mhz: float | None
    temperature_c: float | None
    memory_free_mib: float | None = None
    processes: tuple[GpuProcess, ...] | None = None

    @property
    def device(self) -> str:
        """The name results use for it: ``gpu:<NVML index>``."""
        return f"gpu:{self.index}"

    def accelerator(self) -> dict[str, Any]:
        """The environment snapshot's record of this GPU (settings, not passing state)."""
        record = asdict(self)
        for passing in ("sm_clock_mhz", "temperature_c", "memory_free_mib", "processes"):
            record.pop(passing)
        capability = self.compute_capability
        record["compute_capability"] = (
            None if capability is None else f"{capability[0]}.{capability[1]}"
        )
        return record


@dataclass(frozen=True)
class GpuSurvey:
    """What NVML said about the host: the GPUs, driver and CUDA, and why the list is empty."""

    gpus: list[GpuInfo]
    driver_version: str | None
    cuda_version: str | None
    reason: str | None

    def accelerators(self) -> tuple[dict[str, Any], ...]:
        """The GPUs as the environment snapshot records them."""
        return tuple(gpu.accelerator() for gpu in self.gpus)


def list_gpus(
    nvml: ModuleType | object | None = None,
) -> tuple[list[GpuInfo], str | None, str | None]:
    """The GPUs NVML sees, the driver version, and why the list is empty (else None).

    Never raises: without pynvml, NVML or a GPU the list is empty and the reason
    says which. A GPU whose name or UUID cannot be read is left out.
    """
    survey = survey_gpus(nvml)
    return survey.gpus, survey.driver_version, survey.reason


def survey_gpus(nvml: ModuleType | object | None = None) -> GpuSurvey:
    """:func:`list_gpus` with the CUDA version the driver supports; never raises."""
    if nvml is None:
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError:
            return GpuSurvey([], None, None, PYNVML_MISSING)
    module: Any = nvml
    error = _error(module)
    try:
        module.nvmlInit()
    except Exception as err:  # the module's error, or a stand-in without nvmlInit
        return GpuSurvey([], None, None, f"NVML could not initialise: {err}")
    try:
        driver = _text_or_none(_read(module, "nvmlSystemGetDriverVersion"))
        cuda = _cuda_version(module)
        count = _read(module, "nvmlDeviceGetCount")
        if count is None:
            return GpuSurvey([], driver, cuda, "NVML could not count the GPUs")
        gpus: list[GpuInfo] = []
        unreadable: list[str] = []
        for index in range(int(count)):
            try:
                gpus.append(_gpu_info(module, index))
            except (error, AttributeError) as err:
                unreadable.append(f"GPU {index}: {err}")
        reason = None
        if not gpus:
            reason = "no NVIDIA GPU (NVML reports 0 devices)"
            if unreadable:
                reason = f"no readable NVIDIA GPU ({'; '.join(unreadable)})"
        return GpuSurvey(gpus, driver, cuda, reason)
    finally:
        _read(module, "nvmlShutdown")


def gpu_warnings(gpus: Sequence[GpuInfo]) -> list[str]:
    """Settings that bias a measurement: persistence mode off, power limit below default."""
    warnings = []
    for gpu in gpus:
        if gpu.persistence_mode is False:
            warnings.append(
                f"{gpu.device} ({gpu.name}): persistence mode is off, so the driver may unload "
                "between runs and the first CUDA call pays its start-up; enable it with "
                f"`sudo nvidia-smi -i {gpu.index} -pm 1`"
            )
        if (
            gpu.power_limit_w is not None
            and gpu.default_power_limit_w is not None
            and gpu.power_limit_w < gpu.default_power_limit_w - _POWER_LIMIT_TOLERANCE_W
        ):
            warnings.append(
                f"{gpu.device} ({gpu.name}): power limit {gpu.power_limit_w:.0f} W is below the "
                f"default {gpu.default_power_limit_w:.0f} W, so energy and speed reflect the cap; "
                f"reset it with `sudo nvidia-smi -i {gpu.index} -pl "
                f"{gpu.default_power_limit_w:.0f}`"
            )
    return warnings


def _gpu_info(nvml: Any, index: int) -> GpuInfo:
    """Raises NVML's error only when the GPU's handle, name or UUID cannot be read."""
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = _read(nvml, "nvmlDeviceGetMemoryInfo", handle)
    limit_mw = _read(nvml, "nvmlDeviceGetPowerManagementLimit", handle)
    default_mw = _read(nvml, "nvmlDeviceGetPowerManagementDefaultLimit", handle)
    persistence = _read(nvml, "nvmlDeviceGetPersistenceMode", handle)
    capability = _read(nvml, "nvmlDeviceGetCudaComputeCapability", handle)
    sm_clock = _read(nvml, "nvmlDeviceGetClockInfo", handle, getattr(nvml, "NVML_CLOCK_SM", 1))
    temperature = _read(
        nvml, "nvmlDeviceGetTemperature", handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
    )
    return GpuInfo(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        memory_total_mib=_mib(getattr(memory, "total", None)),
        power_limit_w=None if limit_mw is None else int(limit_mw) / 1000,
        default_power_limit_w=None if default_mw is None else int(default_mw) / 1000,
        persistence_mode=None if persistence is None else bool(persistence),
        mig_mode=_current_mode(_read(nvml, "nvmlDeviceGetMigMode", handle)),
        ecc_enabled=_current_mode(_read(nvml, "nvmlDeviceGetEccMode", handle)),
        compute_capability=(
            None if capability is None else (int(capability[0]), int(capability[1]))
        ),
        sm_clock_mhz=None if sm_clock is None else float(sm_clock),
        temperature_c=None if temperature is None else float(temperature),
        memory_free_mib=_mib(getattr(memory, "free", None)),
        processes=_processes(nvml, handle),
    )


def _processes(nvml: Any, handle: Any) -> tuple[GpuProcess, ...] | None:
    """The processes with a CUDA context on the GPU; None when NVML will not list them."""
    listed = _read(nvml, "nvmlDeviceGetComputeRunningProcesses", handle)
    if listed is None:
        return None
    found = []
    for process in listed:
        pid = int(getattr(process, "pid", -1))
        name = _text_or_none(_read(nvml, "nvmlSystemGetProcessName", pid))
        found.append(GpuProcess(pid, _mib(getattr(process, "usedGpuMemory", None)), name))
    return tuple(found)


def _cuda_version(nvml: Any) -> str | None:
    """The newest CUDA the driver supports (``13.0``), from its integer encoding."""
    for name in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
        encoded = _read(nvml, name)
        if isinstance(encoded, int) and encoded > 0:
            return f"{encoded // 1000}.{encoded % 1000 // 10}"
    return None


def _read(nvml: Any, name: str, *args: Any) -> Any:
    """One fact: None when the module lacks the call or NVML refuses it."""
    call = getattr(nvml, name, None)
    if not callable(call):
        return None
    try:
        return call(*args)
    except _error(nvml):
        return None


def _error(nvml: Any) -> type[BaseException]:
    root = getattr(nvml, "NVMLError", None)
    return root if isinstance(root, type) and issubclass(root, BaseException) else Exception


def _mib(value: object) -> float | None:
    # NVML reports "not available" (e.g. a process's memory under some drivers) as all ones
    if not isinstance(value, int | float) or value >= 2**63:
        return None
    return float(value) / _MIB


def _current_mode(mode: Any) -> bool | None:
    """MIG and ECC modes come as (current, pending); the current one is what runs now."""
    if mode is None:
        return None
    current = mode[0] if isinstance(mode, tuple | list) else mode
    return bool(current)


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _text_or_none(value: object) -> str | None:
    return None if value is None else _text(value)
