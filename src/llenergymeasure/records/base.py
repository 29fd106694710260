"""What every record shares: frozen pydantic models, and a plugin's availability."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from pydantic import BaseModel, ConfigDict

__all__ = ["Availability", "FrozenRecord", "LatencyStats"]


@dataclass(frozen=True)
class Availability:
    """Whether a plugin (engine or energy sampler) can run on this host, and why not."""

    available: bool
    reason: str
    version: str | None = None


class FrozenRecord(BaseModel):
    """A record as written to disk: immutable, and no field it does not declare."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def read_off(cls, source: object, **values: Any) -> Self:
        """This record from ``values``, its other fields read off ``source``'s attributes.

        A field ``source`` has no attribute for keeps its default (or fails validation);
        ``values`` name the fields ``source`` calls otherwise or does not hold.
        """
        shared = {
            name: getattr(source, name)
            for name in cls.model_fields
            if name not in values and hasattr(source, name)
        }
        return cls(**shared, **values)


class LatencyStats(FrozenRecord):
    """Mean and percentiles of one latency, in milliseconds, over ``n`` values."""

    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    n: int

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> LatencyStats | None:
        """Mean and p50/p90/p99 (linear interpolation); None for no values."""
        if not values_ms:
            return None
        arr = np.asarray(values_ms, dtype=float)
        p50, p90, p99 = np.percentile(arr, [50, 90, 99])
        return cls(
            mean_ms=float(arr.mean()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            n=len(arr),
        )
