"""Which version of a distribution is installed: the figure records name an engine or library by."""

from __future__ import annotations

import importlib.metadata

__all__ = ["dist_version"]


def dist_version(*dists: str) -> str | None:
    """The installed version of the first of ``dists`` that is installed, else None."""
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
