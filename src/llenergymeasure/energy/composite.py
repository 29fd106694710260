"""Several energy samplers over one window: e.g. GPUs from NVML and the CPU from RAPL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from llenergymeasure.energy.base import EnergyReading, EnergySampler
from llenergymeasure.records.base import Availability

__all__ = ["CompositeSampler"]

_ORDER = {"low": 0, "medium": 1, "high": 2}


class CompositeSampler:
    """Begins and ends every part together; domains are the union, confidence the weakest."""

    def __init__(self, parts: Sequence[EnergySampler]) -> None:
        if not parts:
            raise ValueError("a composite sampler needs at least one part")
        self.parts = tuple(parts)
        self.name = "+".join(p.name for p in self.parts)
        self.needs_baseline = any(p.needs_baseline for p in self.parts)

    def probe(self) -> Availability:
        results = [p.probe() for p in self.parts]
        missing = [
            f"{p.name}: {r.reason}"
            for p, r in zip(self.parts, results, strict=True)
            if not r.available
        ]
        if missing:
            return Availability(False, "; ".join(missing))
        return Availability(
            True,
            "; ".join(f"{p.name}: {r.reason}" for p, r in zip(self.parts, results, strict=True)),
        )

    def begin(self) -> None:
        for part in self.parts:
            part.begin()

    def end(self) -> EnergyReading:
        readings = [part.end() for part in self.parts]
        confidence: Literal["high", "medium", "low"] = min(
            (r.confidence for r in readings), key=_ORDER.__getitem__
        )
        details: dict[str, Any] = {r.sampler: r.details for r in readings}
        return EnergyReading(
            sampler=self.name,
            domains=tuple(d for r in readings for d in r.domains),
            duration_s=max(r.duration_s for r in readings),
            n_samples=sum(r.n_samples for r in readings),
            confidence=confidence,
            details=details,
            warnings=tuple(w for r in readings for w in r.warnings),
        )
