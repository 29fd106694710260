"""What the simulated NVML hands back: pynvml's own types, filled as NVML fills them.

Memory, utilisation and field values come back as nvidia-ml-py's ctypes structures
(``c_nvmlMemory_t``, ``c_nvmlUtilization_t``, an array of ``c_nvmlFieldValue_t``), and
running processes as the friendly objects pynvml makes of ``c_nvmlProcessInfo_t``. So a
field wraps at its C width, and a union member read as another gives the same bytes
reinterpreted, as on hardware. Also here: the simulated handle and a manual clock.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from llenergymeasure.testing.simulated_gpu import GpuPhysics

if TYPE_CHECKING:
    import pynvml

__all__ = [
    "ManualClock",
    "SimulatedHandle",
    "field_value",
    "nvidia_ml_py",
    "process_info",
]

_SUCCESS, _NOT_SUPPORTED = 0, 3  # NVML_SUCCESS, NVML_ERROR_NOT_SUPPORTED
_UNSIGNED_INT, _UNSIGNED_LONG_LONG = 1, 3  # NVML_VALUE_TYPE_*
_NO_INSTANCE = 0xFFFFFFFF  # a process's GPU and compute instance ids outside MIG
# nvidia-ml-py's module, loaded under this name where a stand-in holds ``pynvml``
_SHADOWED_NAME = "llenergymeasure.testing._nvidia_ml_py"


class ManualClock:
    """A clock that only moves when told to: ``clock.advance(1.5)`` or ``clock.set(12.0)``."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.now_s = start_s
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds``; returns the new time."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        with self._lock:
            self.now_s += seconds
            return self.now_s

    def set(self, now_s: float) -> None:
        """Jump to ``now_s`` (not earlier than the current time)."""
        with self._lock:
            if now_s < self.now_s:
                raise ValueError(f"a clock does not go back ({self.now_s} s -> {now_s} s)")
            self.now_s = now_s


@dataclass(frozen=True)
class SimulatedHandle:
    """What ``nvmlDeviceGetHandleByIndex`` returns: the GPU's index."""

    index: int


def nvidia_ml_py() -> ModuleType:
    """nvidia-ml-py's ``pynvml`` module, whose types the simulated NVML hands back.

    Where a stand-in holds the name ``pynvml`` (the module ``pynvml_stand_in`` writes, a
    :class:`~llenergymeasure.testing.simulated_nvml.SimulatedNvml` a test put in
    ``sys.modules``, or None there to hide it), the package's own file is loaded under a
    private name instead, once per process.
    """
    try:
        module = importlib.import_module("pynvml")
    except ImportError:
        module = None
    if module is not None and hasattr(module, "c_nvmlFieldValue_t"):
        return module
    loaded = sys.modules.get(_SHADOWED_NAME)
    if loaded is not None:
        return loaded
    path = str(importlib.metadata.distribution("nvidia-ml-py").locate_file("pynvml.py"))
    spec = importlib.util.spec_from_file_location(_SHADOWED_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"nvidia-ml-py's pynvml cannot be loaded from {path}")
    loaded = importlib.util.module_from_spec(spec)
    # registered before it runs: pynvml looks itself up in sys.modules while it loads
    sys.modules[_SHADOWED_NAME] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[_SHADOWED_NAME]
        raise
    return loaded


def field_value(value: pynvml.c_nvmlFieldValue_t, physics: GpuPhysics, t: float) -> None:
    """Fill ``value`` for the field its ``fieldId`` names, as NVML does: a return code per
    field, the reading in the union member that ``valueType`` names."""
    value.timestamp = round(t * 1e6)
    value.latencyUsec = 1000
    reading = physics.field(value.fieldId, t)
    value.nvmlReturn = _NOT_SUPPORTED if reading is None else _SUCCESS
    if isinstance(reading, float):
        value.valueType = _UNSIGNED_INT
        value.value.uiVal = round(reading * 1000)
    elif isinstance(reading, int):
        value.valueType = _UNSIGNED_LONG_LONG
        value.value.ullVal = reading


def process_info(nvml_py: ModuleType, pid: int, used_bytes: int) -> pynvml.nvmlFriendlyObject:
    """One entry of ``nvmlDeviceGetComputeRunningProcesses``, as pynvml hands it back: the
    ``c_nvmlProcessInfo_t`` NVML fills, turned into a friendly object, with memory NVML
    cannot tell (``NVML_VALUE_NOT_AVAILABLE``) as None."""
    filled = nvml_py.c_nvmlProcessInfo_t(
        pid=pid,
        usedGpuMemory=used_bytes,
        gpuInstanceId=_NO_INSTANCE,
        computeInstanceId=_NO_INSTANCE,
    )
    info = nvml_py.nvmlStructToFriendlyObject(filled)
    if info.usedGpuMemory == nvml_py.NVML_VALUE_NOT_AVAILABLE_ulonglong.value:
        info.usedGpuMemory = None
    return info
