"""Arrival processes: when each request of an open-loop load is sent.

Times are seconds from the start of the load. Inter-arrival gaps are drawn from a seeded
generator, and the first request arrives one gap after the start, so that a process
at rate r over D seconds schedules about r x D requests (exactly, for ``constant``).

- ``poisson``: exponential gaps with mean 1/rate.
- ``gamma``: gamma gaps with shape = burstiness and scale = 1 / (rate x burstiness), so
  the mean gap is still 1/rate (vLLM's serving benchmark defines burstiness this way):
  burstiness 1 is Poisson, below 1 the arrivals come in bursts, above 1 more evenly.
- ``constant``: every gap is 1/rate.
- ``closed`` has no schedule: each user sends its next request when its last one ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llenergymeasure.config.serving import ArrivalConfig
from llenergymeasure.errors import ConfigError

__all__ = ["MAX_ARRIVALS", "Schedule", "arrival_schedule", "gaps"]

# A schedule longer than this is a typo (a rate or a duration off by orders of magnitude).
MAX_ARRIVALS = 10_000_000
_CHUNK = 4096


@dataclass(frozen=True)
class Schedule:
    """Open-loop arrival times and the arrival period they fill."""

    times_s: tuple[float, ...]
    period_s: float = 0.0  # duration_s, or the last arrival when the count was given

    @property
    def rate_per_s(self) -> float | None:
        """The schedule's own rate: arrivals per second of its period."""
        return len(self.times_s) / self.period_s if self.period_s > 0 else None


def gaps(arrival: ArrivalConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` inter-arrival gaps of an open-loop process, in seconds."""
    if arrival.rate is None:
        raise ConfigError(f"arrival process `{arrival.process}` has no rate")
    mean_s = 1.0 / arrival.rate
    if arrival.process == "constant":
        return np.full(n, mean_s)
    if arrival.process == "poisson":
        return rng.exponential(mean_s, n)
    if arrival.process == "gamma":
        shape = arrival.burstiness
        return rng.gamma(shape, mean_s / shape, n)
    raise ConfigError(f"arrival process `{arrival.process}` has no schedule (closed loop)")


def arrival_schedule(
    arrival: ArrivalConfig,
    *,
    seed: int,
    duration_s: float | None = None,
    n_requests: int | None = None,
) -> Schedule:
    """The arrivals in (0, ``duration_s``], or the first ``n_requests`` arrivals; the same
    seed gives the same schedule."""
    if (duration_s is None) == (n_requests is None):
        raise ConfigError("an arrival schedule needs a duration or a request count, not both")
    rng = np.random.default_rng(seed)
    if n_requests is not None:
        times = np.cumsum(gaps(arrival, n_requests, rng))
        return Schedule(tuple(float(t) for t in times), float(times[-1]))
    assert duration_s is not None
    expected = duration_s * (arrival.rate or 0.0)
    if expected > MAX_ARRIVALS:
        raise ConfigError(
            f"rate × duration_s schedules about {expected:,.0f} requests, more than "
            f"{MAX_ARRIVALS:,}",
            hint="lower serving.arrival.rate or serving.duration_s",
        )
    found: list[float] = []
    last = 0.0
    while True:
        chunk = last + np.cumsum(gaps(arrival, _CHUNK, rng))
        # a hair of tolerance: 40 gaps of 0.1 s add up to 4.000000000000001 s
        inside = chunk[chunk <= duration_s + 1e-9]
        found.extend(float(t) for t in inside)
        if len(inside) < len(chunk) or len(found) > MAX_ARRIVALS:
            break
        last = float(chunk[-1])
    return Schedule(tuple(found[:MAX_ARRIVALS]), duration_s)
