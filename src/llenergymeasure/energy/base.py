"""The energy-sampler protocol: a named window with ``begin`` and ``end``.

A sampler measures the energy of one or more domains (``gpu:0``, ``cpu:0``,
``dram:0``) between ``begin()`` and ``end()``. The caller synchronises the
device at both edges; the sampler only reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from llenergymeasure.errors import EnergyError
from llenergymeasure.records.base import Availability
from llenergymeasure.records.energy import Confidence, DomainEnergy

__all__ = ["Availability", "EnergyReading", "EnergySampler", "SamplerWarning", "WindowClock"]


class SamplerWarning(NamedTuple):
    """A warning with a stable code and a remedy (a bare string reads as ``energy_sampler``)."""

    code: str
    message: str
    remedy: str = "see the message"


@dataclass(frozen=True)
class EnergyReading:
    """What a sampler measured over one window."""

    sampler: str
    domains: tuple[DomainEnergy, ...]
    duration_s: float
    n_samples: int
    confidence: Confidence
    details: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str | SamplerWarning, ...] = ()

    @property
    def measured_j(self) -> float | None:
        """Sum over the measured domains (counter, integrated) that have a figure; else None.

        This is the headline: estimated domains are never added to it.
        """
        return _sum(d for d in self.domains if d.method != "estimated")

    @property
    def estimated_j(self) -> float | None:
        """Sum over the estimated domains that have a figure; None when there is none."""
        return _sum(d for d in self.domains if d.method == "estimated")

    @property
    def method(self) -> Literal["counter", "integrated"] | None:
        """The weakest method among the measured domains with a figure (integrated < counter)."""
        methods = {d.method for d in self.domains if d.energy_j is not None}
        for weakest_first in ("integrated", "counter"):
            if weakest_first in methods:
                return weakest_first
        return None


def _sum(domains: Iterable[DomainEnergy]) -> float | None:
    known = [d.energy_j for d in domains if d.energy_j is not None]
    return sum(known) if known else None


@runtime_checkable
class EnergySampler(Protocol):
    """An energy source. ``begin`` starts a window, ``end`` closes it and returns the reading."""

    name: str
    # True when the reading covers the whole device, idle power included, so that an idle
    # baseline is meaningful; False for figures already attributed to this process.
    needs_baseline: bool

    def probe(self) -> Availability:
        """Can this sampler read energy on this host? Cheap, no side effects."""
        ...

    def begin(self) -> None:
        """Start the window (read counters, note the time)."""
        ...

    def end(self) -> EnergyReading:
        """Close the window and return what was measured."""
        ...


class WindowClock:
    """How long a sampler's window lasted, on an injectable clock (samplers that read no device)."""

    def __init__(self, sampler: str, clock: Callable[[], float]) -> None:
        self._sampler = sampler
        self._clock = clock
        self._start_s: float | None = None

    def begin(self) -> None:
        """Note the clock at the window's start."""
        self._start_s = self._clock()

    def end_s(self) -> float:
        """Seconds since ``begin``; the window is closed (a second ``end_s`` is an error)."""
        if self._start_s is None:
            raise EnergyError(f"{self._sampler} sampler: end() called without begin()")
        duration_s = self._clock() - self._start_s
        self._start_s = None
        return duration_s
