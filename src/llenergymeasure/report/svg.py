"""What the report's charts are made of: series, bands, rules, scales, round ticks and
compact number labels, and :func:`downsample`, which thins a trace while keeping its peaks.
:mod:`llenergymeasure.report.chart` draws them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MUTED",
    "PALETTE",
    "SKY_BLUE",
    "VERMILLION",
    "Band",
    "Rule",
    "Scale",
    "Series",
    "downsample",
    "format_number",
    "nice_ticks",
]

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE: tuple[str, ...] = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#F0E442",
)
# Colours with one meaning in every chart: vermillion for a limit (an SLO, throttling) or
# the Pareto front, sky blue for the measured window, grey for what sits behind the data.
VERMILLION, SKY_BLUE = PALETTE[1], PALETTE[5]
MUTED = "#999999"


@dataclass(frozen=True)
class Series:
    """One named set of points; a ``None`` y breaks the line there and draws no marker.

    ``y_low``/``y_high`` draw error bars where both are given; ``labels`` write a short
    text next to each marker; ``tooltips`` become hover titles of the markers.
    """

    name: str
    x: Sequence[float]
    y: Sequence[float | None]
    mode: Literal["lines", "markers", "lines+markers"] = "lines+markers"
    color: str | None = None
    y_low: Sequence[float | None] | None = None
    y_high: Sequence[float | None] | None = None
    labels: Sequence[str] | None = None
    tooltips: Sequence[str] | None = None
    faint: bool = False
    in_legend: bool = True
    marker_r: float = 3.5


@dataclass(frozen=True)
class Band:
    """A shaded x-range (e.g. the warm-up, a throttled stretch)."""

    start: float
    end: float
    label: str
    color: str
    opacity: float = 0.15


@dataclass(frozen=True)
class Rule:
    """A dashed vertical line at ``x`` (e.g. the start of the measured window)."""

    x: float
    label: str
    color: str = "#555555"


def format_number(value: float, step: float | None = None) -> str:
    """A compact label: decimals to match ``step``, exponent form for very large/small."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6 or magnitude < 1e-4:
        return f"{value:.3g}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")
    if step is None or step <= 0:
        return f"{value:.4g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1  # a step like 2.5 needs one more digit
    return f"{value:,.{min(decimals, 6)}f}"


def nice_ticks(low: float, high: float, target: int = 5) -> list[float]:
    """About ``target`` round tick values (steps 1, 2, 2.5 or 5 x 10^k) covering [low, high].

    The first tick is at or below ``low`` and the last at or above ``high``, so the
    ticks can serve as the axis's domain.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"tick range must be finite, got [{low}, {high}]")
    if high < low:
        low, high = high, low
    magnitude = max(abs(low), abs(high))
    if high - low <= 1e-12 * magnitude or high - low < 1e-200:
        # one value (or a span below float resolution): a range around it
        pad = magnitude * 0.1 if magnitude > 1e-200 else 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(1, target)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    n = round((last - first) / step)
    # rounded a few digits below the step: float noise goes (0.30000000000000004 -> 0.3)
    decimals = max(0, 3 - math.floor(math.log10(step)))
    return [round(first + i * step, decimals) for i in range(n + 1)]


@dataclass(frozen=True)
class Scale:
    """Maps data values on one axis to pixels: linear, log10 or categorical (index)."""

    low: float
    high: float
    pixel_low: float
    pixel_high: float
    log: bool = False

    def __call__(self, value: float) -> float:
        low, high, v = self.low, self.high, value
        if self.log:
            low, high, v = math.log10(low), math.log10(high), math.log10(max(value, 1e-300))
        span = high - low or 1.0
        return self.pixel_low + (v - low) / span * (self.pixel_high - self.pixel_low)


def downsample(
    x: Sequence[float], y: Sequence[float | None], max_points: int
) -> tuple[list[float], list[float | None]]:
    """At most ``max_points`` points: per bucket of x order, the minimum and the maximum.

    Peaks and dips survive (a mean would flatten a power spike); gaps (``None``) are
    kept as single breaks so that lines do not bridge missing readings.
    """
    if max_points < 4:
        raise ValueError("max_points must be at least 4")
    if len(x) <= max_points:
        return list(x), list(y)
    n_buckets = max_points // 2
    size = len(x) / n_buckets
    out_x: list[float] = []
    out_y: list[float | None] = []
    for b in range(n_buckets):
        start, end = round(b * size), round((b + 1) * size)
        values = [(x[i], v) for i in range(start, end) if (v := y[i]) is not None]
        if len(values) < end - start and out_y and out_y[-1] is not None:
            # a gap inside this bucket: keep one break so the line does not bridge it
            out_x.append(x[start])
            out_y.append(None)
        if not values:
            continue
        low = min(values, key=lambda p: p[1])
        high = max(values, key=lambda p: p[1])
        for xv, yv in sorted({low, high}):
            out_x.append(xv)
            out_y.append(yv)
    return out_x, out_y
