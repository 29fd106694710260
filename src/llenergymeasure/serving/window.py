"""The steady-state window: when ramp-up is over, and the latest it may start.

Ramp-up is over at the first tick at which at least one request has completed and the
mean in-flight count over the last L seconds differs from its mean over the L seconds
before by at most max(0.5, 10 %, √mean) requests, with L = max(1 s, the median
end-to-end latency so far): one request's lifetime is how long the in-flight count
takes to settle after the load changes (Little's law). The tolerance is the noise of a
Poisson count, so that a steady random load still counts as steady; a count that rose by
more than 0.5 over each of the last two spans is still ramping, however slowly.

A load that never settles (offered load above what the server can serve) still gets a
window: it starts at the *deadline*, ``min(period - min_window_s, period / 2)``, so that
it is at least ``min_window_s`` long and covers at least half of the arrival period.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from typing import Literal

__all__ = ["MIN_SETTLE_S", "SteadyStateDetector", "mean_between", "window_deadline_s"]

# The shortest look-back of the settling test: shorter spans hold too few ticks.
MIN_SETTLE_S = 1.0
_RELATIVE_TOLERANCE = 0.10
_ABSOLUTE_TOLERANCE = 0.5

StartRule = Literal["stabilised", "deadline"]


def window_deadline_s(period_s: float, min_window_s: float) -> float:
    """The latest load time at which the window starts: long enough, and half the period."""
    return max(0.0, min(period_s - min_window_s, period_s / 2.0))


def mean_between(samples: Sequence[tuple[float, int]], t0: float, t1: float) -> float | None:
    """Mean of the counts sampled in (t0, t1]; None when no sample falls there."""
    times = [t for t, _ in samples]
    lo, hi = bisect.bisect_right(times, t0), bisect.bisect_right(times, t1)
    counts = [n for _, n in samples[lo:hi]]
    return math.fsum(counts) / len(counts) if counts else None


class SteadyStateDetector:
    """Decides, tick by tick, when the window starts (see the module docstring)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []

    def observe(
        self,
        now_s: float,
        in_flight: int,
        latencies_s: Sequence[float],
        *,
        first_sent_s: float | None,
        deadline_reached: bool,
    ) -> StartRule | None:
        """Record one tick; the rule by which the window starts now, or None.

        ``latencies_s`` are the end-to-end latencies of the requests completed so far;
        ``first_sent_s`` is when the first request was sent.
        """
        self.samples.append((now_s, in_flight))
        if (
            latencies_s
            and first_sent_s is not None
            and self._settled(now_s, latencies_s, first_sent_s)
        ):
            return "stabilised"
        return "deadline" if deadline_reached else None

    def _settled(self, now_s: float, latencies_s: Sequence[float], first_sent_s: float) -> bool:
        span_s = max(MIN_SETTLE_S, statistics.median(latencies_s))
        if now_s - first_sent_s < 2 * span_s:
            return False
        recent = mean_between(self.samples, now_s - span_s, now_s)
        before = mean_between(self.samples, now_s - 2 * span_s, now_s - span_s)
        if recent is None or before is None:
            return False
        tolerance = max(_ABSOLUTE_TOLERANCE, _RELATIVE_TOLERANCE * before, math.sqrt(before))
        if abs(recent - before) > tolerance:
            return False
        # Still climbing over three spans is a load outgrowing the server, however slowly.
        earlier = mean_between(self.samples, now_s - 3 * span_s, now_s - 2 * span_s)
        rising = (
            earlier is not None and min(recent - before, before - earlier) > _ABSOLUTE_TOLERANCE
        )
        return not rising
