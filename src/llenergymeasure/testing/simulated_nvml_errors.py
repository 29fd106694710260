"""The NVML error classes of the simulated NVML, named and numbered as pynvml's.

Each class carries NVML's return code (``value``) and NVML's text (``str(err)``);
they all derive from :class:`NVMLError`, as pynvml's do. What they mean: Uninitialized, a
call before ``nvmlInit`` (or after the last ``nvmlShutdown``); InvalidArgument, a bad device
index or handle; NotSupported, the device lacks the feature (no energy counter before
Volta); NoPermission, the call needs privileges the process lacks; NotFound, no such object
(e.g. a process that has exited); DriverNotLoaded, the NVIDIA kernel driver is not running;
LibraryNotFound, no libnvidia-ml.so; FunctionNotFound, the driver lacks this NVML function;
GpuIsLost, the GPU fell off the bus; Unknown, any other failure.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "NVMLError",
    "NVMLError_DriverNotLoaded",
    "NVMLError_FunctionNotFound",
    "NVMLError_GpuIsLost",
    "NVMLError_InvalidArgument",
    "NVMLError_LibraryNotFound",
    "NVMLError_NoPermission",
    "NVMLError_NotFound",
    "NVMLError_NotSupported",
    "NVMLError_Uninitialized",
    "NVMLError_Unknown",
]


class NVMLError(Exception):
    """Root of the simulated NVML errors; ``value`` is the NVML return code."""

    VALUE: ClassVar[int] = 999
    TEXT: ClassVar[str] = "Unknown Error"

    def __init__(self, value: int | None = None) -> None:
        self.value = self.VALUE if value is None else value
        super().__init__(self.value)

    def __str__(self) -> str:
        return self.TEXT


def _error(name: str, value: int, text: str) -> type[NVMLError]:
    """One pynvml error class: ``value`` is its NVML return code, ``text`` its message."""
    doc = f"NVML return code {value}: {text}."
    namespace = {"VALUE": value, "TEXT": text, "__doc__": doc, "__module__": __name__}
    return type(name, (NVMLError,), namespace)


# pynvml's table, one class a line: name, NVML return code, message.
# fmt: off
NVMLError_Uninitialized = _error("NVMLError_Uninitialized", 1, "Uninitialized")
NVMLError_InvalidArgument = _error("NVMLError_InvalidArgument", 2, "Invalid Argument")
NVMLError_NotSupported = _error("NVMLError_NotSupported", 3, "Not Supported")
NVMLError_NoPermission = _error("NVMLError_NoPermission", 4, "Insufficient Permissions")
NVMLError_NotFound = _error("NVMLError_NotFound", 6, "Not Found")
NVMLError_DriverNotLoaded = _error("NVMLError_DriverNotLoaded", 9, "Driver Not Loaded")
NVMLError_LibraryNotFound = _error("NVMLError_LibraryNotFound", 12, "NVML Shared Library Not Found")
NVMLError_FunctionNotFound = _error("NVMLError_FunctionNotFound", 13, "Function Not Found")
NVMLError_GpuIsLost = _error("NVMLError_GpuIsLost", 15, "GPU is lost")
NVMLError_Unknown = _error("NVMLError_Unknown", 999, "Unknown Error")
# fmt: on
