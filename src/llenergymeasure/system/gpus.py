"""The host's NVIDIA GPUs as NVML reports them, and the warnings their settings call for.

Read-only facts for the environment snapshot and pre-flight: names, UUIDs,
memory, power limits, clocks, persistence, MIG and ECC modes. Each fact is read
on its own; one NVML refuses is None. pynvml is imported only when
:func:`list_gpus` runs, and ``nvml=`` takes any object with the same calls (such
as :class:`~llenergymeasure.testing.simulated_nvml.SimulatedNvml`).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["GpuInfo", "gpu_warnings", "list_gpus"]

PYNVML_MISSING = "pynvml not installed: pip install nvidia-ml-py"

_MIB = 1024 * 1024
# Power limits are set in whole watts; below this the limit is "the default".
_POWER_LIMIT_TOLERANCE_W = 0.5


@dataclass(frozen=True)
class GpuInfo:
    """One GPU: identity and settings, each None where NVML would not say."""

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

    @property
    def device(self) -> str:
        """The name results use for it: ``gpu:<NVML index>``."""
        return f"gpu:{self.index}"


def list_gpus(
    nvml: ModuleType | object | None = None,
) -> tuple[list[GpuInfo], str | None, str | None]:
    """The GPUs NVML sees, the driver version, and why the list is empty (else None).

    Never raises: without pynvml, NVML or a GPU the list is empty and the reason
    says which. A GPU whose name or UUID cannot be read is left out.
    """
    if nvml is None:
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError:
            return [], None, PYNVML_MISSING
    module: Any = nvml
    try:
        module.nvmlInit()
    except module.NVMLError as err:
        return [], None, f"NVML could not initialise: {err}"
    try:
        driver_raw = _read(module, module.nvmlSystemGetDriverVersion)
        driver = None if driver_raw is None else _text(driver_raw)
        count = _read(module, module.nvmlDeviceGetCount)
        if count is None:
            return [], driver, "NVML could not count the GPUs"
        gpus: list[GpuInfo] = []
        unreadable: list[str] = []
        for index in range(int(count)):
            try:
                gpus.append(_gpu_info(module, index))
            except module.NVMLError as err:
                unreadable.append(f"GPU {index}: {err}")
        reason = None
        if not gpus:
            reason = "no NVIDIA GPU (NVML reports 0 devices)"
            if unreadable:
                reason = f"no readable NVIDIA GPU ({'; '.join(unreadable)})"
        return gpus, driver, reason
    finally:
        with contextlib.suppress(module.NVMLError):
            module.nvmlShutdown()


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
    """Raises NVMLError only when the GPU's handle, name or UUID cannot be read."""
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = _text(nvml.nvmlDeviceGetName(handle))
    uuid = _text(nvml.nvmlDeviceGetUUID(handle))
    memory = _read(nvml, nvml.nvmlDeviceGetMemoryInfo, handle)
    limit_mw = _read(nvml, nvml.nvmlDeviceGetPowerManagementLimit, handle)
    default_mw = _read(nvml, nvml.nvmlDeviceGetPowerManagementDefaultLimit, handle)
    persistence = _read(nvml, nvml.nvmlDeviceGetPersistenceMode, handle)
    capability = _read(nvml, nvml.nvmlDeviceGetCudaComputeCapability, handle)
    sm_clock = _read(nvml, nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)
    temperature = _read(nvml, nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
    return GpuInfo(
        index=index,
        name=name,
        uuid=uuid,
        memory_total_mib=None if memory is None else int(memory.total) / _MIB,
        power_limit_w=None if limit_mw is None else int(limit_mw) / 1000,
        default_power_limit_w=None if default_mw is None else int(default_mw) / 1000,
        persistence_mode=None if persistence is None else bool(persistence),
        mig_mode=_current_mode(_read(nvml, nvml.nvmlDeviceGetMigMode, handle)),
        ecc_enabled=_current_mode(_read(nvml, nvml.nvmlDeviceGetEccMode, handle)),
        compute_capability=(
            None if capability is None else (int(capability[0]), int(capability[1]))
        ),
        sm_clock_mhz=None if sm_clock is None else float(sm_clock),
        temperature_c=None if temperature is None else float(temperature),
    )


def _read(nvml: Any, call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    except nvml.NVMLError:
        return None


def _current_mode(mode: Any) -> bool | None:
    """MIG and ECC modes come as (current, pending); the current one is what runs now."""
    if mode is None:
        return None
    current = mode[0] if isinstance(mode, (tuple, list)) else mode
    return bool(current)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
