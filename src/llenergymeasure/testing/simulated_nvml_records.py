"""The plain values the simulated NVML hands back, its handle, and a manual clock.

Field names follow pynvml's ctypes structures (``usedGpuMemory``, ``nvmlReturn``, ...),
so code written against pynvml reads them unchanged.
"""

# ruff: noqa: N815

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from llenergymeasure.testing.simulated_gpu import GpuPhysics

__all__ = [
    "FieldValue",
    "ManualClock",
    "Memory",
    "ProcessInfo",
    "SimulatedHandle",
    "Utilization",
    "Value",
    "field_value",
]

_SUCCESS, _NOT_SUPPORTED = 0, 3  # NVML_SUCCESS, NVML_ERROR_NOT_SUPPORTED
_UNSIGNED_INT, _UNSIGNED_LONG_LONG = 1, 3  # NVML_VALUE_TYPE_*


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


# Alike config/study.py:SkippedConfig, kept apart because only the shape matches
@dataclass(frozen=True)
class Utilization:
    gpu: int
    memory: int


@dataclass(frozen=True)
class Memory:
    total: int
    used: int
    free: int


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    usedGpuMemory: int
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


# Alike testing/simulated_gpu.py:SimulatedGpu, kept apart because only the field shape matches
@dataclass
class Value:
    """NVML's value union: one member holds the value, chosen by ``valueType``."""

    dVal: float = 0.0
    uiVal: int = 0
    ulVal: int = 0
    ullVal: int = 0
    sllVal: int = 0
    siVal: int = 0
    usVal: int = 0


@dataclass
class FieldValue:
    fieldId: int
    scopeId: int
    timestamp: int
    latencyUsec: int
    valueType: int
    nvmlReturn: int
    value: Value = field(default_factory=Value)


def field_value(physics: GpuPhysics, requested: int | tuple[int, int], t: float) -> FieldValue:
    """One field value, as NVML fills it: a return code per field, the value in its member."""
    field_id, scope = requested if isinstance(requested, tuple) else (requested, 0)
    value = FieldValue(field_id, scope, round(t * 1e6), 1000, 0, _SUCCESS)
    reading = physics.field(field_id, t)
    if reading is None:
        value.nvmlReturn = _NOT_SUPPORTED
    elif isinstance(reading, float):
        value.valueType = _UNSIGNED_INT
        value.value.uiVal = round(reading * 1000)
    else:
        value.valueType = _UNSIGNED_LONG_LONG
        value.value.ullVal = reading
    return value
