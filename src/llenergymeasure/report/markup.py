"""HTML building blocks of the report: sections, tables, numbers shown to about four
significant digits, and "n/a" for a missing reading (never 0)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape

from llenergymeasure.results.collection import AggregateView
from llenergymeasure.results.export import Scalar

__all__ = [
    "distinct",
    "grid",
    "html_table",
    "kv_table",
    "mean_ci",
    "number",
    "param_text",
    "plain",
    "section",
    "sig",
    "when",
]


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def html_table(header: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def kv_table(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def sig(value: float) -> str:
    """About four significant digits, with thousands separators and no exponent in between."""
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if not 1e-3 <= magnitude < 1e9:
        return f"{value:.3e}"
    decimals = max(0, 3 - math.floor(math.log10(magnitude)))
    return f"{value:,.{decimals}f}"


def number(value: float | None, unit: str = "", spec: str | None = None) -> str:
    if value is None or not math.isfinite(value):
        return '<span class="na">n/a</span>'
    text = sig(value) if spec is None else format(value, spec)
    return escape(f"{text} {unit}".strip())


def mean_ci(agg: AggregateView, unit: str) -> str:
    if agg.mean is None:
        return '<span class="na">n/a</span>'
    if agg.ci95_half_width is None:
        text = sig(agg.mean)
    else:
        # the mean to the interval's precision: two significant digits of the half-width
        half = agg.ci95_half_width
        decimals = max(0, 1 - math.floor(math.log10(half))) if half > 0 else 4
        text = f"{agg.mean:,.{decimals}f} ± {half:,.{decimals}f}"
    return escape(f"{text} {unit}") + f' <span class="n">(n={agg.n})</span>'


def when(value: datetime | None) -> str:
    return "n/a" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def distinct(values: Iterable[str | None]) -> str:
    seen = list(dict.fromkeys(v for v in values if v))
    return escape(", ".join(seen)) if seen else '<span class="na">n/a</span>'


def plain(value: float | None) -> str:
    return "n/a" if value is None else sig(value)


def grid(items: Sequence[str]) -> str:
    return '<div class="grid">' + "".join(f"<figure>{item}</figure>" for item in items) + "</div>"


def param_text(value: Scalar) -> str:
    return "—" if value is None else str(value)
