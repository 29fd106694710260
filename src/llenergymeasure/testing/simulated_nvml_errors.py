"""The NVML error classes of the simulated NVML, named and numbered as pynvml's.

Each class carries NVML's return code (``value``) and NVML's text (``str(err)``);
they all derive from :class:`NVMLError`, as pynvml's do.
"""

# The pynvml names (NVMLError_NotSupported, ...) are kept verbatim: matching them is the point.
# ruff: noqa: N801, N818

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


class NVMLError_NotFound(NVMLError):
    """No such object (e.g. the name of a process that has exited)."""

    VALUE = 6
    TEXT = "Not Found"


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
