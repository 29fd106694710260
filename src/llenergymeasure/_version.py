"""The installed version of llenergymeasure."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def tool_version() -> str:
    """The version string of the installed distribution (``0+unknown`` from a bare checkout)."""
    try:
        return version("llenergymeasure")
    except PackageNotFoundError:
        return "0+unknown"
