"""Where llenergymeasure keeps per-user files (cache)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """``$LLEM_CACHE_DIR`` or the platform's user cache dir for llenergymeasure."""
    explicit = os.environ.get("LLEM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    import platformdirs  # lazy: only needed when the cache is used

    return platformdirs.user_cache_path("llenergymeasure")
