"""What the samplers built on a vendor library (Zeus, CodeCarbon) share: the library's version."""

from __future__ import annotations

from types import ModuleType

from llenergymeasure.records.versions import dist_version

__all__ = ["installed_version"]


def installed_version(module: ModuleType, *distributions: str) -> str | None:
    """The module's ``__version__``, else that of the first installed distribution named."""
    version = getattr(module, "__version__", None)
    return version if isinstance(version, str) else dist_version(*distributions)
