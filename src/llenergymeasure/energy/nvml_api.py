"""The NVML boundary: pynvml (or any stand-in with its names) behind one small wrapper.

Every NVML call llem makes goes through :class:`Nvml`. A function the module lacks (an
older pynvml or driver, an incomplete stand-in) is an absent feature, never a crash:
:meth:`Nvml.get` returns None for it as for an NVML error, and :meth:`Nvml.has` says
whether it exists at all. Field values (``nvmlDeviceGetFieldValues``) come back as plain
numbers, None where NVML refused the field. pynvml is imported by :func:`load_nvml`
only, never at import time.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from llenergymeasure.errors import EnergyError

__all__ = ["PYNVML_MISSING", "Nvml", "NvmlMissing", "load_nvml", "text"]

PYNVML_MISSING = "pynvml not installed: pip install nvidia-ml-py"

# nvmlValueType_t -> the member of the value union that holds the value
_VALUE_MEMBERS = {
    0: "dVal",
    1: "uiVal",
    2: "ulVal",
    3: "ullVal",
    4: "sllVal",
    5: "siVal",
    6: "usVal",
}


class NvmlMissing(Exception):  # noqa: N818 - a condition, not a failure of ours
    """The NVML module has no such function."""


def load_nvml(nvml: ModuleType | object | None = None) -> Nvml:
    """``nvml`` wrapped, or the ``pynvml`` module imported now; EnergyError without it."""
    if isinstance(nvml, Nvml):
        return nvml
    if nvml is None:
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError as err:
            raise EnergyError(PYNVML_MISSING, hint="pip install nvidia-ml-py") from err
    return Nvml(nvml)


def text(value: object) -> str:
    """NVML strings: bytes in old pynvml versions, str in new ones."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class Nvml:
    """One NVML module. ``error`` is its error root (``Exception`` if it names none);
    ``errors`` adds :class:`NvmlMissing`, for ``except`` clauses around any call."""

    def __init__(self, module: Any) -> None:
        self.module = module
        root = getattr(module, "NVMLError", None)
        self.error: type[BaseException] = (
            root if isinstance(root, type) and issubclass(root, BaseException) else Exception
        )
        not_supported = getattr(module, "NVMLError_NotSupported", None)
        self._not_supported = not_supported if isinstance(not_supported, type) else None
        # what a call can fail with: NVML's own error, or a function the module lacks
        self.errors: tuple[type[BaseException], ...] = (self.error, NvmlMissing)

    def has(self, name: str) -> bool:
        """Whether the module offers the function ``name``."""
        return callable(getattr(self.module, name, None))

    def call(self, name: str, *args: Any) -> Any:
        """``name(*args)``; NvmlMissing when the module lacks it, NVML errors as raised."""
        function = getattr(self.module, name, None)
        if not callable(function):
            raise NvmlMissing(f"this NVML has no {name}")
        return function(*args)

    def get(self, name: str, *args: Any) -> Any:
        """``name(*args)``, or None when the function is missing or NVML refuses."""
        try:
            return self.call(name, *args)
        except self.errors:
            return None

    def is_not_supported(self, err: BaseException) -> bool:
        """Whether ``err`` says the device lacks the feature (rather than that it failed)."""
        if isinstance(err, NvmlMissing):
            return True
        return self._not_supported is not None and isinstance(err, self._not_supported)

    def constant(self, name: str, default: int | None = None) -> int | None:
        """An integer constant of the module (a field id, a bit), or ``default``."""
        value = getattr(self.module, name, default)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    def init(self) -> None:
        """``nvmlInit``; raises the module's error (or NvmlMissing) as it does."""
        self.call("nvmlInit")

    def shutdown(self) -> None:
        """``nvmlShutdown``, ignoring failure: whatever was read is already read."""
        with contextlib.suppress(*self.errors):
            self.call("nvmlShutdown")

    @contextmanager
    def shut_down_on_failure(self, what: str) -> Iterator[None]:
        """Inside the block, a failure shuts NVML down; NVML's error becomes
        ``EnergyError(f"{what}: {err}")``."""
        try:
            yield
        except EnergyError:
            self.shutdown()
            raise
        except self.errors as err:
            self.shutdown()
            raise EnergyError(f"{what}: {err}") from err

    def field_values(self, handle: Any, field_ids: Sequence[int]) -> dict[int, float | None]:
        """Each field's value (None where NVML refused it); all None without the function.

        Raises the module's error when the whole call fails (e.g. the GPU is lost).
        """
        try:
            values = self.call("nvmlDeviceGetFieldValues", handle, list(field_ids))
        except NvmlMissing:
            return dict.fromkeys(field_ids)
        found: dict[int, float | None] = dict.fromkeys(field_ids)
        for field_id, value in zip(field_ids, values, strict=False):
            found[field_id] = _field_number(value)
        return found

    def driver_version(self) -> str | None:
        """The driver version, or None."""
        version = self.get("nvmlSystemGetDriverVersion")
        return None if version is None else text(version)

    def cuda_version(self) -> str | None:
        """The newest CUDA the driver supports, e.g. ``13.0``; None when NVML will not say."""
        for name in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
            encoded = self.get(name)
            if isinstance(encoded, int) and encoded > 0:
                return f"{encoded // 1000}.{encoded % 1000 // 10}"
        return None


def _field_number(value: Any) -> float | None:
    if getattr(value, "nvmlReturn", 1) != 0:
        return None
    member = _VALUE_MEMBERS.get(getattr(value, "valueType", -1))
    number = getattr(getattr(value, "value", None), member or "", None)
    return float(number) if isinstance(number, int | float) else None


def field_ids(nvml: Nvml, names: Mapping[str, str]) -> dict[str, int]:
    """``{key: field id}`` for the field constants the module names (others left out)."""
    found = {}
    for key, constant in names.items():
        field_id = nvml.constant(constant)
        if field_id is not None:
            found[key] = field_id
    return found
