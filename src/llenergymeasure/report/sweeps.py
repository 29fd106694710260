"""The charts against the swept parameters and the energy-throughput Pareto front."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.report.chart import chart
from llenergymeasure.report.configs import ConfigRuns, j_per_token, pareto_front, tokens_per_s
from llenergymeasure.report.markup import grid, html_table, number, param_text, plain, section
from llenergymeasure.report.svg import PALETTE, Series
from llenergymeasure.results.collection import AggregateView

__all__ = ["pareto_section", "sweep_plots"]


_FRONT_COLOR = "#D55E00"


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
    numbers = {
        c.config_hash: float(v)
        for c in having
        if isinstance(v := c.params[param], int | float) and not isinstance(v, bool)
    }
    numeric = len(numbers) == len(having)
    categories = [] if numeric else list(dict.fromkeys(str(c.params[param]) for c in having))

    def x_of(c: ConfigRuns) -> float:
        if numeric:
            return numbers[c.config_hash]
        return float(categories.index(str(c.params[param])))

    others = [p for p in swept if p != param]
    groups: dict[str, list[ConfigRuns]] = {}
    for c in having:
        key = ", ".join(f"{p}={param_text(c.params.get(p))}" for p in others)
        groups.setdefault(key, []).append(c)
    series: list[Series] = []
    for i, (key, members) in enumerate(groups.items()):
        members.sort(key=x_of)
        color = PALETTE[i % len(PALETTE)]
        runs_x = [x_of(c) for c in members for r in c.runs]
        runs_y = [read(r.result) for c in members for r in c.runs]
        series.append(
            Series(
                "",
                runs_x,
                runs_y,
                mode="markers",
                color=color,
                faint=True,
                in_legend=False,
                marker_r=2.5,
            )
        )
        aggs = [agg_of(c) for c in members]
        series.append(
            Series(
                key or "mean ± 95 % CI",
                [x_of(c) for c in members],
                [a.mean for a in aggs],
                color=color,
                y_low=[a.ci95_low for a in aggs],
                y_high=[a.ci95_high for a in aggs],
                tooltips=[
                    f"#{c.index} {c.label}: {plain(a.mean)} {unit}"
                    for c, a in zip(members, aggs, strict=True)
                ],
            )
        )
    values = list(numbers.values()) if numeric else []
    positive = bool(values) and min(values) > 0
    log = positive and max(values) / min(values) >= 10
    distinct = sorted(set(values))
    return chart(
        series,
        title=f"{name} vs {param}",
        x_label=param,
        y_label=f"{name} ({unit})",
        x_scale="category" if not numeric else ("log" if log else "linear"),
        categories=categories,
        x_ticks=distinct if numeric and len(distinct) <= 12 else None,
        y_from_zero=True,
        empty_note=f"no {name} figure in these runs",
    )


def pareto_section(configs: Sequence[ConfigRuns]) -> str:
    placed = [c for c in configs if c.jpt.mean is not None and c.tps.mean is not None]
    points = [(float(c.tps.mean or 0.0), float(c.jpt.mean or 0.0)) for c in placed]
    front = pareto_front(points)
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
            color="#999999",
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
            color=_FRONT_COLOR,
            marker_r=5,
            tooltips=[f"#{placed[i].index} {placed[i].label}" for i in front],
        ),
    ]
    svg = chart(
        series,
        title="Energy per output token vs throughput",
        x_label="output tokens/s (tok/s), higher is better",
        y_label="J per output token (J), lower is better",
        y_from_zero=True,
        empty_note="no config has both an energy and a throughput figure",
    )
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
    return section("Energy–throughput Pareto front", note + grid([svg]) + table, "pareto")
