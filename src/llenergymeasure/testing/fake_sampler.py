"""A deterministic energy sampler: scripted power x elapsed time, per domain.

Shipped in the package so that users and tests fake the same seam the real
samplers fill: pass it as ``sampler=`` wherever an energy sampler is taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Literal

from llenergymeasure.energy.base import Availability, EnergyReading, WindowClock
from llenergymeasure.records.energy import Confidence, DomainEnergy

__all__ = ["FakeEnergySampler"]

_CONFIDENCE: Mapping[str, Confidence] = MappingProxyType(
    {"counter": "high", "integrated": "medium", "estimated": "low"}
)


class FakeEnergySampler:
    """Energy = the scripted power of each domain x the window's elapsed time.

    A domain scripted as ``None`` reads as ``energy_j=None`` (a reading that was
    not taken). ``clock`` is injectable, so with a fake clock the figures are exact.
    """

    name = "fake"
    needs_baseline = True

    def __init__(
        self,
        power_w_by_domain: Mapping[str, float | None],
        method: Literal["counter", "integrated", "estimated"] = "counter",
        clock: Callable[[], float] = time.perf_counter,
        *,
        n_samples: int = 0,
    ) -> None:
        self.power_w_by_domain = dict(power_w_by_domain)
        self.method: Literal["counter", "integrated", "estimated"] = method
        self.n_samples = n_samples
        self._window = WindowClock(self.name, clock)

    def probe(self) -> Availability:
        """Always available."""
        return Availability(True, "scripted power figures")

    def begin(self) -> None:
        """Note the clock."""
        self._window.begin()

    def end(self) -> EnergyReading:
        """Power x elapsed seconds for each scripted domain."""
        duration_s = self._window.end_s()
        return EnergyReading(
            sampler=self.name,
            domains=tuple(
                DomainEnergy(
                    domain=domain,
                    energy_j=None if power_w is None else power_w * duration_s,
                    method=self.method,
                    source=self.name,
                )
                for domain, power_w in self.power_w_by_domain.items()
            ),
            duration_s=duration_s,
            n_samples=self.n_samples,
            confidence=_CONFIDENCE[self.method],
            details={"power_w_by_domain": dict(self.power_w_by_domain)},
        )
