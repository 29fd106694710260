"""The NVML error classes of the simulated NVML, named and numbered as pynvml's.

Each class carries NVML's return code (``value``) and NVML's text (``str(err)``);
they all derive from :class:`NVMLError`, as pynvml's do.
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


def _error(name: str, value: int, text: str, doc: str) -> type[NVMLError]:
    """One pynvml error class: ``value`` is its NVML return code, ``text`` its message."""
    namespace = {"VALUE": value, "TEXT": text, "__doc__": doc, "__module__": __name__}
    return type(name, (NVMLError,), namespace)


# One line of pynvml's table per class: name, return code, message, meaning.
# fmt: off
NVMLError_Uninitialized = _error("NVMLError_Uninitialized", 1, "Uninitialized",
                                 "A call before ``nvmlInit`` (or after the last ``nvmlShutdown``).")
NVMLError_InvalidArgument = _error("NVMLError_InvalidArgument", 2, "Invalid Argument",
                                   "A bad device index or handle.")
NVMLError_NotSupported = _error("NVMLError_NotSupported", 3, "Not Supported",
                                "The device lacks the feature (no energy counter before Volta).")
NVMLError_NoPermission = _error("NVMLError_NoPermission", 4, "Insufficient Permissions",
                                "The call needs privileges the process does not have.")
NVMLError_NotFound = _error("NVMLError_NotFound", 6, "Not Found",
                            "No such object (e.g. the name of a process that has exited).")
NVMLError_DriverNotLoaded = _error("NVMLError_DriverNotLoaded", 9, "Driver Not Loaded",
                                   "The NVIDIA kernel driver is not running.")
NVMLError_LibraryNotFound = _error("NVMLError_LibraryNotFound", 12, "NVML Shared Library Not Found",
                                   "libnvidia-ml.so could not be found.")
NVMLError_FunctionNotFound = _error("NVMLError_FunctionNotFound", 13, "Function Not Found",
                                    "The installed driver lacks this NVML function.")
NVMLError_GpuIsLost = _error("NVMLError_GpuIsLost", 15, "GPU is lost",
                             "The GPU fell off the bus or otherwise stopped answering.")
NVMLError_Unknown = _error("NVMLError_Unknown", 999, "Unknown Error", "Any other failure.")
# fmt: on
