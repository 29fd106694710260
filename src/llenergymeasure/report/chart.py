"""Draws the report's charts as inline SVG: axes, ticks, units and labels, no JavaScript.

One function draws every chart of the report, :func:`chart`: lines and/or markers per
:class:`~llenergymeasure.report.svg.Series` (with optional error bars and point labels),
shaded x-ranges (``Band``) and vertical rules (``Rule``). The x axis is linear,
logarithmic or categorical; the y axis is linear. Text is escaped; coordinates are rounded
to 0.1 px so that long traces stay small.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Literal

from llenergymeasure.report.svg import PALETTE, Band, Rule, Scale, Series, format_number, nice_ticks

__all__ = ["chart"]

_FONT_PX = 12
_CHAR_PX = 6.6  # average glyph width of the sans-serif font at 12 px, for layout only
_MARGIN_LEFT = 70
_MARGIN_RIGHT = 20
_MARGIN_TOP = 30
_MARGIN_BOTTOM = 48
_LEGEND_ROW_PX = 18


@dataclass
class _Canvas:
    width: int
    height: int
    parts: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.parts.append(text)


def chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_scale: Literal["linear", "log", "category"] = "linear",
    categories: Sequence[str] = (),
    x_ticks: Sequence[float] | None = None,
    bands: Sequence[Band] = (),
    rules: Sequence[Rule] = (),
    y_from_zero: bool = False,
    width: int = 640,
    height: int = 300,
    empty_note: str = "no data",
) -> str:
    """An ``<svg class="plot">`` chart of ``series`` with titled, unit-labelled axes.

    With ``x_scale="category"`` the x values are indexes into ``categories``, which
    label the ticks. ``x_ticks`` fixes the x tick positions (e.g. the swept values);
    otherwise round ticks are chosen. A chart with no finite point shows ``empty_note``.
    Every data mark carries the class ``mark``, so a reader can count what was drawn.
    """
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    xs, ys = _extent(series, bands, rules, log=x_scale == "log")
    empty = not ys or (not xs and x_scale != "category")
    items = [] if empty else _legend_items(series, colors, bands)
    legend_rows = _legend_rows(items, width - _MARGIN_LEFT - _MARGIN_RIGHT)
    canvas = _Canvas(width, height + len(legend_rows) * _LEGEND_ROW_PX)
    box = _Box(
        _MARGIN_LEFT,
        width - _MARGIN_RIGHT,
        _MARGIN_TOP + len(legend_rows) * _LEGEND_ROW_PX,
        canvas.height - _MARGIN_BOTTOM,
    )
    _draw_title_and_legend(canvas, title, legend_rows, box.left)
    if empty:
        _draw_empty(canvas, box, empty_note)
        return _svg(canvas, title)
    y_low, y_high = (min([*ys, 0.0]) if y_from_zero else min(ys)), max(ys)
    # a little headroom, so that a line at the maximum does not run along the frame
    y_ticks = nice_ticks(y_low, y_high + 0.02 * (y_high - y_low))
    y_axis = Scale(y_ticks[0], y_ticks[-1], box.bottom, box.top)
    x_axis, x_tick_values, x_tick_labels = _x_axis(
        x_scale, xs, categories, x_ticks, box.left, box.right
    )
    _draw_axes(
        canvas,
        x_axis,
        y_axis,
        list(zip(x_tick_values, x_tick_labels, strict=True)),
        y_ticks,
        (box.left, box.right, box.top, box.bottom),
    )
    _draw_bands_and_rules(canvas, box, x_axis, bands, rules)
    for s, color in zip(series, colors, strict=True):
        _draw_series(canvas, s, color, x_axis, y_axis)
    _draw_axis_labels(canvas, box, x_label, y_label)
    return _svg(canvas, title)


@dataclass(frozen=True)
class _Box:
    """The plot area in pixels."""

    left: float
    right: float
    top: float
    bottom: float


def _extent(
    series: Sequence[Series], bands: Sequence[Band], rules: Sequence[Rule], *, log: bool
) -> tuple[list[float], list[float]]:
    """The x and y values the axes must cover (positive x only on a log axis)."""
    xs = [x for s in series for x, y in zip(s.x, s.y, strict=True) if y is not None]
    xs += [v for b in bands for v in (b.start, b.end)] + [r.x for r in rules]
    ys = _finite([y for s in series for y in s.y])
    ys += _finite([y for s in series for y in (s.y_low or ())])
    ys += _finite([y for s in series for y in (s.y_high or ())])
    return ([x for x in xs if x > 0] if log else xs), ys


def _legend_items(
    series: Sequence[Series], colors: Sequence[str], bands: Sequence[Band]
) -> list[tuple[str, str, bool]]:
    """(name, colour, is a band) per legend entry: named series, then each band label once."""
    items = [
        (s.name, color, False)
        for s, color in zip(series, colors, strict=True)
        if s.in_legend and s.name
    ]
    seen: set[str] = set()
    for band in bands:
        if band.label and band.label not in seen:
            seen.add(band.label)
            items.append((band.label, band.color, True))
    return items


def _draw_empty(canvas: _Canvas, box: _Box, note: str) -> None:
    canvas.add(
        f'<rect x="{box.left}" y="{box.top}" width="{box.right - box.left}" '
        f'height="{box.bottom - box.top}" fill="none" stroke="#999"/>'
    )
    canvas.add(
        f'<text class="empty" x="{_f((box.left + box.right) / 2)}" '
        f'y="{_f((box.top + box.bottom) / 2)}" text-anchor="middle" fill="#666">'
        f"{escape(note)}</text>"
    )


def _draw_bands_and_rules(
    canvas: _Canvas, box: _Box, x_axis: Scale, bands: Sequence[Band], rules: Sequence[Rule]
) -> None:
    for band in bands:
        x0, x1 = sorted((x_axis(band.start), x_axis(band.end)))
        x0, x1 = max(x0, box.left), min(x1, box.right)
        if x1 > x0:
            canvas.add(
                f'<rect class="band" x="{_f(x0)}" y="{box.top}" width="{_f(max(x1 - x0, 1))}" '
                f'height="{box.bottom - box.top}" fill="{band.color}" '
                f'fill-opacity="{band.opacity}"><title>{escape(band.label)}</title></rect>'
            )
    for rule in rules:
        x = x_axis(rule.x)
        canvas.add(
            f'<line class="rule" x1="{_f(x)}" x2="{_f(x)}" y1="{box.top}" y2="{box.bottom}" '
            f'stroke="{rule.color}" stroke-dasharray="4 3"><title>{escape(rule.label)}</title>'
            "</line>"
        )


def _draw_axis_labels(canvas: _Canvas, box: _Box, x_label: str, y_label: str) -> None:
    canvas.add(
        f'<text x="{_f((box.left + box.right) / 2)}" y="{canvas.height - 8}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    middle = (box.top + box.bottom) / 2
    canvas.add(
        f'<text x="14" y="{_f(middle)}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_f(middle)})">{escape(y_label)}</text>'
    )


def _f(value: float) -> str:
    """A pixel coordinate, 0.1 px resolution, no trailing zeros."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _x_axis(
    kind: str,
    xs: list[float],
    categories: Sequence[str],
    fixed: Sequence[float] | None,
    left: float,
    right: float,
) -> tuple[Scale, list[float], list[str]]:
    if kind == "category":
        n = max(len(categories), 1)
        scale = Scale(-0.5, n - 0.5, left, right)
        return scale, [float(i) for i in range(len(categories))], list(categories)
    low, high = min(xs), max(xs)
    if kind == "log":
        if fixed:
            low, high = min(low, *fixed), max(high, *fixed)
        pad = (math.log10(high) - math.log10(low)) * 0.05 or 0.1
        scale = Scale(low / 10**pad, high * 10**pad, left, right, log=True)
        ticks = list(fixed) if fixed else _log_ticks(low, high)
        return scale, ticks, [format_number(t) for t in ticks]
    if fixed:
        ticks = sorted(fixed)
        span = (max(high, ticks[-1]) - min(low, ticks[0])) or abs(ticks[0]) or 1.0
        scale = Scale(
            min(low, ticks[0]) - 0.05 * span, max(high, ticks[-1]) + 0.05 * span, left, right
        )
        step = min((b - a for a, b in itertools.pairwise(ticks)), default=None)
        return scale, ticks, [format_number(t, step) for t in ticks]
    ticks = nice_ticks(low, high, target=6)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else None
    return Scale(ticks[0], ticks[-1], left, right), ticks, [format_number(t, step) for t in ticks]


def _log_ticks(low: float, high: float) -> list[float]:
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    ticks = [10.0**k for k in range(first, last + 1)]
    if len(ticks) <= 3:  # a narrow range: add 2x and 5x
        ticks = sorted({m * t for t in ticks for m in (1, 2, 5)})
    return [t for t in ticks if low / 1.5 <= t <= high * 1.5] or [low, high]


def _draw_axes(
    canvas: _Canvas,
    x_axis: Scale,
    y_axis: Scale,
    x_ticks: list[tuple[float, str]],
    y_ticks: list[float],
    box: tuple[float, float, float, float],
) -> None:
    left, right, top, bottom = box
    step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else None
    parts = [f'<g class="axes" font-size="{_FONT_PX - 1}" fill="#333">']
    for tick in y_ticks:
        y = _f(y_axis(tick))
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y}" y2="{y}" stroke="#e3e3e3"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y}" text-anchor="end" dominant-baseline="middle">'
            f"{escape(format_number(tick, step))}</text>"
        )
    every = max(1, math.ceil(len(x_ticks) * 60 / max(right - left, 1)))  # no overlapping labels
    for i, (tick, label) in enumerate(x_ticks):
        x = x_axis(tick)
        if not left - 0.5 <= x <= right + 0.5:
            continue
        parts.append(
            f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{bottom}" y2="{bottom + 5}" stroke="#333"/>'
        )
        if i % every == 0:
            parts.append(
                f'<text x="{_f(x)}" y="{bottom + 18}" text-anchor="middle">{escape(label)}</text>'
            )
    parts.append(f'<path d="M{left} {top}V{bottom}H{right}" fill="none" stroke="#333"/></g>')
    canvas.add("".join(parts))


def _draw_series(canvas: _Canvas, s: Series, color: str, x_axis: Scale, y_axis: Scale) -> None:
    opacity = ' opacity="0.35"' if s.faint else ""
    points = [
        (x_axis(x), y_axis(y)) if y is not None and math.isfinite(y) else None
        for x, y in zip(s.x, s.y, strict=True)
    ]
    if "lines" in s.mode:
        path: list[str] = []
        pen_up = True
        for point in points:
            if point is None:
                pen_up = True
                continue
            path.append(f"{'M' if pen_up else 'L'}{_f(point[0])} {_f(point[1])}")
            pen_up = False
        if path:
            canvas.add(
                f'<path class="mark line" d="{"".join(path)}" fill="none" stroke="{color}" '
                f'stroke-width="1.6"{opacity}><title>{escape(s.name)}</title></path>'
            )
    if s.y_low is not None and s.y_high is not None:
        for point, low, high in zip(points, s.y_low, s.y_high, strict=True):
            if point is None or low is None or high is None:
                continue
            x, y0, y1 = _f(point[0]), _f(y_axis(low)), _f(y_axis(high))
            canvas.add(
                f'<path class="mark errorbar" d="M{x} {y0}V{y1}M{_f(point[0] - 4)} {y0}h8'
                f'M{_f(point[0] - 4)} {y1}h8" stroke="{color}" fill="none"{opacity}/>'
            )
    if "markers" in s.mode:
        for i, point in enumerate(points):
            if point is None:
                continue
            tip = s.tooltips[i] if s.tooltips is not None else s.name
            canvas.add(
                f'<circle class="mark" cx="{_f(point[0])}" cy="{_f(point[1])}" r="{s.marker_r}" '
                f'fill="{color}"{opacity}><title>{escape(tip)}</title></circle>'
            )
            if s.labels is not None and s.labels[i]:
                canvas.add(
                    f'<text x="{_f(point[0] + 6)}" y="{_f(point[1] - 6)}" '
                    f'font-size="{_FONT_PX - 1}" fill="{color}">{escape(s.labels[i])}</text>'
                )


def _legend_rows(
    items: list[tuple[str, str, bool]], width: float
) -> list[list[tuple[str, str, bool, float]]]:
    rows: list[list[tuple[str, str, bool, float]]] = []
    x = width + 1  # forces a first row
    for name, color, is_band in items:
        item_px = 22 + len(name) * _CHAR_PX + 14
        if x + item_px > width and (not rows or rows[-1]):
            rows.append([])
            x = 0.0
        rows[-1].append((name, color, is_band, x))
        x += item_px
    return rows


def _draw_title_and_legend(
    canvas: _Canvas, title: str, rows: list[list[tuple[str, str, bool, float]]], left: float
) -> None:
    canvas.add(
        f'<text class="title" x="{_f(canvas.width / 2)}" y="18" text-anchor="middle" '
        f'font-weight="bold">{escape(title)}</text>'
    )
    for r, row in enumerate(rows):
        y = _MARGIN_TOP + r * _LEGEND_ROW_PX
        for name, color, is_band, x in row:
            x0 = left + x
            swatch = (
                f'<rect x="{_f(x0)}" y="{y - 5}" width="16" height="10" fill="{color}" '
                'fill-opacity="0.3"/>'
                if is_band
                else f'<line x1="{_f(x0)}" x2="{_f(x0 + 16)}" y1="{y}" y2="{y}" stroke="{color}" '
                'stroke-width="3"/>'
            )
            canvas.add(
                f'<g class="legend" font-size="{_FONT_PX - 1}">{swatch}'
                f'<text x="{_f(x0 + 22)}" y="{y}" dominant-baseline="middle">{escape(name)}</text>'
                "</g>"
            )


def _svg(canvas: _Canvas, title: str) -> str:
    return (
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {canvas.width} '
        f'{canvas.height}" width="{canvas.width}" height="{canvas.height}" role="img" '
        f'aria-label="{escape(title)}" font-family="system-ui, sans-serif" '
        f'font-size="{_FONT_PX}">' + "".join(canvas.parts) + "</svg>"
    )
