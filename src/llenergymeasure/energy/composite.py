"""Several energy samplers over one window: e.g. GPUs from NVML and the CPU from RAPL.

Each domain is measured by one part only: a composite whose parts report the same
domain (CodeCarbon's ``gpu:0`` beside NVML's, Zeus's ``cpu:0`` beside RAPL's) is an
error, never a merge, since adding both would count that device twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llenergymeasure.energy.base import EnergyReading, EnergySampler
from llenergymeasure.errors import EnergyError
from llenergymeasure.records.base import Availability
from llenergymeasure.records.energy import Confidence

__all__ = ["CompositeSampler"]

_ORDER = {"low": 0, "medium": 1, "high": 2}


class CompositeSampler:
    """Begins and ends every part together; domains are the union (each measured once).

    The reading's confidence is that of the headline: the weakest part that measured a
    domain (an estimate beside it does not lower it), or the weakest part of all when
    nothing was measured.
    """

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
        """Every part's reading, joined; EnergyError when two parts report one domain."""
        readings = [part.end() for part in self.parts]
        owner: dict[str, str] = {}
        for reading in readings:
            for domain in reading.domains:
                if domain.domain in owner:
                    raise EnergyError(
                        f"energy domain {domain.domain} was measured by both "
                        f"`{owner[domain.domain]}` and `{reading.sampler}`: adding them would "
                        "count the device twice",
                        hint="measure each device with one energy sampler",
                    )
                owner[domain.domain] = reading.sampler
        measuring = [r for r in readings if r.measured_j is not None] or readings
        confidence: Confidence = min((r.confidence for r in measuring), key=_ORDER.__getitem__)
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
