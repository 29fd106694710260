"""What a power/thermal trace recorded: its rows, marks and ticks, and figures drawn from them.

Times are *trace time*: seconds since the trace's origin. Windows ``[t0, t1]`` are
closed; ``None`` means the start or end of the trace.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

from llenergymeasure.energy.telemetry import DeviceSample
from llenergymeasure.records.timeseries import TIMESERIES_COLUMNS

__all__ = ["PowerStats", "Trace", "TraceRow"]


@dataclass(frozen=True)
class _TraceTime:
    """The trace time that leads a TraceRow; it holds no storage (TraceRow's slots do)."""

    __slots__ = ()
    t_s: float


# Bases give their fields in reverse MRO order, so ``t_s`` comes first, as in the parquet file.
@dataclass(frozen=True, slots=True)
class TraceRow(DeviceSample, _TraceTime):
    """One device at one instant of the trace: ``t_s`` plus the DeviceSample fields.

    Its fields are exactly the ``timeseries.parquet`` columns, in order.
    """

    @classmethod
    def from_sample(cls, t_s: float, sample: DeviceSample) -> TraceRow:
        """A DeviceSample stamped with its trace time."""
        return cls(t_s=t_s, **{name: getattr(sample, name) for name in _SAMPLE_FIELDS})


_SAMPLE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(DeviceSample))


@dataclass(frozen=True)
class PowerStats:
    """Power of one device over a window, from its samples (each sample weighs the same)."""

    mean_w: float
    p50_w: float
    p99_w: float
    peak_w: float
    n_samples: int


@dataclass(frozen=True)
class Trace:
    """What a stopped PowerTrace recorded.

    ``samples`` are in time order; ``ticks`` are the trace times at which the
    sampler polled (one per ``sample_once``); ``marks`` are named instants;
    ``errors`` say which sources failed and were dropped. Windows ``[t0, t1]``
    are closed; ``None`` means the start or end of the trace.
    """

    interval_ms: int
    samples: tuple[TraceRow, ...]
    marks: dict[str, float]
    errors: tuple[str, ...]
    ticks: tuple[float, ...] = ()
    origin_s: float = 0.0

    def to_rows(self) -> list[dict[str, object]]:
        """The samples as mappings with exactly the ``timeseries.parquet`` columns."""
        return [{name: getattr(row, name) for name in TIMESERIES_COLUMNS} for row in self.samples]

    def devices(self) -> list[str]:
        """Device names in order of first appearance."""
        return list(dict.fromkeys(row.device for row in self.samples))

    def rows_between(
        self, t0: float | None = None, t1: float | None = None, *, device: str | None = None
    ) -> list[TraceRow]:
        """Samples with ``t0 <= t_s <= t1``, optionally of one device only."""
        lo, hi = _bounds(t0, t1)
        return [
            row
            for row in self.samples
            if lo <= row.t_s <= hi and (device is None or row.device == device)
        ]

    def total_power_by_tick(self, t0: float | None = None, t1: float | None = None) -> list[float]:
        """Summed power of every device that reports power, one figure per sampling instant."""
        by_tick: dict[float, float] = {}
        for row in self.rows_between(t0, t1):
            if row.power_w is not None:
                by_tick[row.t_s] = by_tick.get(row.t_s, 0.0) + row.power_w
        return list(by_tick.values())

    def power_stats(
        self, device: str, t0: float | None = None, t1: float | None = None
    ) -> PowerStats | None:
        """Mean, median, p99 and peak power of ``device`` in the window; None without samples."""
        watts = sorted(
            row.power_w
            for row in self.rows_between(t0, t1, device=device)
            if row.power_w is not None
        )
        if not watts:
            return None
        return PowerStats(
            mean_w=math.fsum(watts) / len(watts),
            p50_w=_percentile(watts, 50.0),
            p99_w=_percentile(watts, 99.0),
            peak_w=watts[-1],
            n_samples=len(watts),
        )

    def integrated_energy_j(
        self, device: str, t0: float | None = None, t1: float | None = None
    ) -> float | None:
        """Trapezoid integral of ``device``'s power over the window, in joules.

        None with fewer than two power samples inside the window. Where samples
        exist on both sides of an edge, power at the edge is interpolated, so the
        integral covers the whole window and not just first-to-last sample.
        """
        points = self._series(device, "power_w", t0, t1)
        if points is None:
            return None
        return math.fsum(
            (t_b - t_a) * (p_a + p_b) / 2.0 for (t_a, p_a), (t_b, p_b) in itertools.pairwise(points)
        )

    def counter_energy_j(
        self, device: str, t0: float | None = None, t1: float | None = None
    ) -> float | None:
        """Last minus first reading of ``device``'s cumulative energy counter in the window.

        None when fewer than two readings fall inside the window, or when the
        counter went backwards (a reset). Edges are interpolated as for
        :meth:`integrated_energy_j`.
        """
        points = self._series(device, "energy_j", t0, t1)
        if points is None:
            return None
        energy_j = points[-1][1] - points[0][1]
        return energy_j if energy_j >= 0 else None

    def achieved_rate(self, t0: float | None = None, t1: float | None = None) -> float | None:
        """Ticks (polls of all sources) per second in the window ÷ the requested rate.

        1.0 means on schedule. ``n`` ticks span ``n − 1`` intervals; a given edge
        falls on average halfway between two ticks, so it adds half a tick; an
        open edge is the first or last tick itself. None when the window has no length.
        """
        ticks = [t for t in self.ticks if _inside(t, t0, t1)]
        start = t0 if t0 is not None else (ticks[0] if ticks else 0.0)
        end = t1 if t1 is not None else (ticks[-1] if ticks else 0.0)
        if end <= start:
            return None
        n_intervals = len(ticks) - 1 + 0.5 * ((t0 is not None) + (t1 is not None))
        return max(n_intervals, 0.0) / (end - start) * (self.interval_ms / 1000.0)

    def max_gap_s(
        self, t0: float | None = None, t1: float | None = None, *, device: str | None = None
    ) -> float | None:
        """Longest time without a tick (or, with ``device``, without a row of that device).

        Given edges count: the time from ``t0`` to the first sample and from the
        last sample to ``t1`` are gaps too. None when there is nothing to measure.
        """
        if device is None:
            times = [t for t in self.ticks if _inside(t, t0, t1)]
        else:
            times = [row.t_s for row in self.rows_between(t0, t1, device=device)]
        if t0 is not None:
            times.insert(0, t0)
        if t1 is not None:
            times.append(t1)
        if len(times) < 2:
            return None
        return max(b - a for a, b in itertools.pairwise(times))

    def _series(
        self, device: str, field: str, t0: float | None, t1: float | None
    ) -> list[tuple[float, float]] | None:
        """(t, value) points of one field inside the window, edges interpolated; None if < 2."""
        lo, hi = _bounds(t0, t1)
        every: list[tuple[float, float]] = []
        for row in self.samples:
            value = getattr(row, field)
            if row.device == device and value is not None:
                every.append((row.t_s, float(value)))
        inside = [p for p in every if lo <= p[0] <= hi]
        if len(inside) < 2:
            return None
        before = [p for p in every if p[0] < lo]
        after = [p for p in every if p[0] > hi]
        if before and inside[0][0] > lo:
            inside.insert(0, (lo, _interpolate(before[-1], inside[0], lo)))
        if after and inside[-1][0] < hi:
            inside.append((hi, _interpolate(inside[-1], after[0], hi)))
        return inside


def _bounds(t0: float | None, t1: float | None) -> tuple[float, float]:
    return (-math.inf if t0 is None else t0, math.inf if t1 is None else t1)


def _inside(t: float, t0: float | None, t1: float | None) -> bool:
    lo, hi = _bounds(t0, t1)
    return lo <= t <= hi


def _interpolate(a: tuple[float, float], b: tuple[float, float], t: float) -> float:
    (t_a, v_a), (t_b, v_b) = a, b
    if t_b == t_a:
        return v_a
    return v_a + (v_b - v_a) * (t - t_a) / (t_b - t_a)


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile of sorted values (numpy's default method)."""
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
