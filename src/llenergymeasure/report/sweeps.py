"""The charts against the swept parameters and the energy-throughput Pareto front."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.report.chart import chart
from llenergymeasure.report.configs import ConfigRuns, j_per_token, pareto_front, tokens_per_s
from llenergymeasure.report.markup import grid, html_table, number, param_text, plain, section
from llenergymeasure.report.svg import MUTED, PALETTE, VERMILLION, Series
from llenergymeasure.results.collection import AggregateView

__all__ = ["SweptAxis", "pareto_section", "sweep_plots"]


def sweep_plots(configs: Sequence[ConfigRuns], swept: Sequence[str]) -> str:
    if not swept:
        body = '<p class="note">Nothing was swept: every config takes the same values.</p>'
        return section("Against the swept parameters", body, "sweeps")
    charts = []
    for param in swept:
        for read, agg_of, name, unit in (
            (j_per_token, lambda c: c.jpt, "J per output token", "J"),
            (tokens_per_s, lambda c: c.tps, "output tokens/s", "tok/s"),
        ):
            charts.append(_sweep_chart(configs, swept, param, read, agg_of, name, unit))
    return section("Against the swept parameters", grid(charts), "sweeps")


@dataclass(frozen=True)
class SweptAxis:
    """Where each config sits along one swept parameter: its number, or its category."""

    param: str
    numbers: dict[str, float]
    categories: list[str]

    @classmethod
    def of(cls, configs: Sequence[ConfigRuns], param: str) -> SweptAxis:
        numbers = {
            c.config_hash: float(v)
            for c in configs
            if isinstance(v := c.params[param], int | float) and not isinstance(v, bool)
        }
        numeric = len(numbers) == len(configs)
        categories = [] if numeric else list(dict.fromkeys(str(c.params[param]) for c in configs))
        return cls(param, numbers if numeric else {}, categories)

    def x(self, config: ConfigRuns) -> float:
        if not self.categories:
            return self.numbers[config.config_hash]
        return float(self.categories.index(str(config.params[self.param])))

    def scale(self) -> Literal["linear", "log", "category"]:
        """Log when the values are positive and span a factor of ten or more."""
        if self.categories:
            return "category"
        values = list(self.numbers.values())
        if values and min(values) > 0 and max(values) / min(values) >= 10:
            return "log"
        return "linear"

    def ticks(self) -> list[float] | None:
        """The swept values themselves as ticks, when there are few enough to read."""
        distinct = sorted(set(self.numbers.values()))
        return distinct if not self.categories and len(distinct) <= 12 else None


def _sweep_chart(
    configs: Sequence[ConfigRuns],
    swept: Sequence[str],
    param: str,
    read: Callable[[ExperimentResult], float | None],
    agg_of: Callable[[ConfigRuns], AggregateView],
    name: str,
    unit: str,
) -> str:
    having = [c for c in configs if c.params.get(param) is not None]
    axis = SweptAxis.of(having, param)
    others = [p for p in swept if p != param]
    groups: dict[str, list[ConfigRuns]] = {}
    for c in having:
        key = ", ".join(f"{p}={param_text(c.params.get(p))}" for p in others)
        groups.setdefault(key, []).append(c)
    series: list[Series] = []
    for i, (key, members) in enumerate(groups.items()):
        members.sort(key=axis.x)
        color = PALETTE[i % len(PALETTE)]
        aggs = [agg_of(c) for c in members]
        series.extend(_group_series(members, axis, read, aggs, key, color, unit))
    return chart(
        series,
        title=f"{name} vs {param}",
        x_label=param,
        y_label=f"{name} ({unit})",
        x_scale=axis.scale(),
        categories=axis.categories,
        x_ticks=axis.ticks(),
        y_from_zero=True,
        empty_note=f"no {name} figure in these runs",
    )


def _group_series(
    members: Sequence[ConfigRuns],
    axis: SweptAxis,
    read: Callable[[ExperimentResult], float | None],
    aggs: Sequence[AggregateView],
    key: str,
    color: str,
    unit: str,
) -> tuple[Series, Series]:
    """Every run as a faint marker, and the configs' means with their 95 % CIs."""
    runs = Series(
        "",
        [axis.x(c) for c in members for _ in c.runs],
        [read(r.result) for c in members for r in c.runs],
        mode="markers",
        color=color,
        faint=True,
        in_legend=False,
        marker_r=2.5,
    )
    means = Series(
        key or "mean ± 95 % CI",
        [axis.x(c) for c in members],
        [a.mean for a in aggs],
        color=color,
        y_low=[a.ci95_low for a in aggs],
        y_high=[a.ci95_high for a in aggs],
        tooltips=[
            f"#{c.index} {c.label}: {plain(a.mean)} {unit}"
            for c, a in zip(members, aggs, strict=True)
        ],
    )
    return runs, means


def pareto_section(configs: Sequence[ConfigRuns]) -> str:
    placed = [c for c in configs if c.jpt.mean is not None and c.tps.mean is not None]
    points = [(float(c.tps.mean or 0.0), float(c.jpt.mean or 0.0)) for c in placed]
    front = pareto_front(points)
    rows = [
        [
            str(placed[i].index),
            escape(placed[i].label),
            number(points[i][0], "tok/s"),
            number(points[i][1], "J"),
        ]
        for i in front
    ]
    table = (
        html_table(["#", "config on the front", "output tokens/s", "J / output token"], rows)
        if rows
        else ""
    )
    note = (
        '<p class="note">A config is on the front when no other config is both faster and '
        "cheaper per token (config means across cycles).</p>"
    )
    svg = _pareto_chart(placed, points, front)
    return section("Energy–throughput Pareto front", note + grid([svg]) + table, "pareto")


def _pareto_chart(
    placed: Sequence[ConfigRuns], points: Sequence[tuple[float, float]], front: Sequence[int]
) -> str:
    """Every run faint, the config means labelled, and the front joined by a line."""
    measured = [
        (x, y)
        for c in placed
        for r in c.runs
        if (x := tokens_per_s(r.result)) is not None and (y := j_per_token(r.result)) is not None
    ]
    series = [
        Series(
            "runs",
            [x for x, _ in measured],
            [y for _, y in measured],
            mode="markers",
            color=MUTED,
            faint=True,
            marker_r=2.5,
        ),
        Series(
            "config means",
            [p[0] for p in points],
            [p[1] for p in points],
            mode="markers",
            color=PALETTE[0],
            labels=[f"#{c.index}" for c in placed],
            tooltips=[f"#{c.index} {c.label}" for c in placed],
        ),
        Series(
            "Pareto front",
            [points[i][0] for i in front],
            [points[i][1] for i in front],
            color=VERMILLION,
            marker_r=5,
            tooltips=[f"#{placed[i].index} {placed[i].label}" for i in front],
        ),
    ]
    return chart(
        series,
        title="Energy per output token vs throughput",
        x_label="output tokens/s (tok/s), higher is better",
        y_label="J per output token (J), lower is better",
        y_from_zero=True,
        empty_note="no config has both an energy and a throughput figure",
    )
