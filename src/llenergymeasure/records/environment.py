"""The environment snapshot: the host, its packages and its accelerators at run time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from llenergymeasure.records.base import FrozenRecord

__all__ = ["EnvironmentSnapshot"]


class EnvironmentSnapshot(FrozenRecord):
    os: str
    kernel: str
    hostname: str
    cpu_model: str | None
    n_cpus_logical: int | None
    n_cpus_physical: int | None
    memory_total_mib: float | None
    python: str
    packages: dict[str, str | None]
    accelerators: tuple[dict[str, Any], ...] = ()
    cuda_version: str | None = None
    driver_version: str | None = None
    container: str | None = None
    captured_at: datetime
