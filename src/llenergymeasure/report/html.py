"""The HTML report of a study or a run: one self-contained file, inline SVG, no network.

Sections, top to bottom: the summary; the per-config table (mean ± 95 % CI across
cycles, from ``study_result.json``); J/output token and output tokens/s against each
swept parameter; the energy-throughput Pareto front; the power, temperature, clock and
utilisation traces of a chosen run with the warm-up, the window and throttled stretches
shaded; every run; the warnings; the environment; the methodology.

A *swept parameter* is any config field (dotted name) that takes two or more values
across the configs of the set, so groups and explicit experiment lists count too.
Traces are thinned to :data:`MAX_TRACE_POINTS` points per line (peaks kept), and at most
:data:`MAX_TRACE_RUNS` runs carry traces, so the file stays small for large studies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from llenergymeasure.records.atomic import atomic_write_text
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.records.timeseries import THROTTLE_MASK
from llenergymeasure.report.svg import PALETTE, Band, Rule, Series, chart, downsample
from llenergymeasure.results.collection import ResultSet, RunResult, load_runs, open_results
from llenergymeasure.results.export import Scalar, flatten
from llenergymeasure.results.listing import tally_warnings
from llenergymeasure.results.views import AggregateView

__all__ = [
    "MAX_TRACE_POINTS",
    "MAX_TRACE_RUNS",
    "REPORT_FILE",
    "build_report",
    "pareto_front",
    "render_report",
    "swept_parameters",
    "write_report",
]

REPORT_FILE = "report.html"
MAX_TRACE_POINTS = 600
MAX_TRACE_RUNS = 48

_WARMUP_COLOR = "#888888"
_WINDOW_COLOR = "#56B4E9"
_THROTTLE_COLOR = "#D55E00"
_FRONT_COLOR = "#D55E00"

# (column, chart name, unit, what the note says is missing)
_TRACE_QUANTITIES: tuple[tuple[str, str, str, str], ...] = (
    ("power_w", "Power", "W", "power"),
    ("temperature_c", "Temperature", "°C", "temperature"),
    ("sm_clock_mhz", "SM clock", "MHz", "SM clock"),
    ("utilisation_pct", "Utilisation", "%", "utilisation"),
)


def _jpt(result: ExperimentResult) -> float | None:
    return result.energy.j_per_output_token


def _tps(result: ExperimentResult) -> float | None:
    return result.throughput.output_tokens_per_s


@dataclass(frozen=True)
class _Config:
    """The runs of one config, with its across-cycle aggregates."""

    config_hash: str
    index: int
    label: str
    runs: tuple[RunResult, ...]
    params: dict[str, Scalar]
    jpt: AggregateView
    tps: AggregateView


def build_report(path: Path) -> str:
    """The report of the study or run at ``path``, as one HTML document."""
    results = open_results(path)
    return render_report(results, load_runs(results, traces=True))


def write_report(path: Path, output: Path | None = None) -> Path:
    """Write the report of ``path`` (default: ``report.html`` in its folder); returns the file."""
    results = open_results(path)
    html = render_report(results, load_runs(results, traces=True))
    target = output or (results.path / REPORT_FILE)
    atomic_write_text(target, html)
    return target


def render_report(results: ResultSet, runs: Sequence[RunResult]) -> str:
    """The report of ``results`` from its runs, read with their traces."""
    configs = _configs(results, runs)
    swept = swept_parameters([c.params for c in configs])
    sections = [
        _summary(results, runs),
        _config_table(results, configs, swept),
        _sweep_plots(configs, swept),
        _pareto(configs),
        _traces(runs),
        _runs_table(results, runs),
        _warnings(runs),
        _environment(runs),
        _methodology(results, runs),
    ]
    title = f"llem report · {results.name}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>" + "".join(sections) + f"<script>{_SCRIPT}</script>"
        "</body></html>\n"
    )


# ------------------------------------------------------------------ data


def _configs(results: ResultSet, runs: Sequence[RunResult]) -> list[_Config]:
    groups: dict[str, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(run.entry.config_hash, []).append(run)
    aggregates = {a.config_hash: a for a in (results.study.aggregates if results.study else ())}
    configs = []
    for config_hash, group in groups.items():
        agg = aggregates.get(config_hash)
        configs.append(
            _Config(
                config_hash=config_hash,
                index=group[0].entry.index,
                label=group[0].entry.label,
                runs=tuple(group),
                params=flatten(group[0].result.config.model_dump(mode="json")),
                jpt=agg.j_per_output_token if agg else _mean_only(group, _jpt),
                tps=agg.output_tokens_per_s if agg else _mean_only(group, _tps),
            )
        )
    return sorted(configs, key=lambda c: c.index)


def _mean_only(
    runs: Sequence[RunResult], read: Callable[[ExperimentResult], float | None]
) -> AggregateView:
    """The mean without an interval, for sets without ``study_result.json`` (single runs)."""
    values = [v for run in runs if (v := read(run.result)) is not None]
    return AggregateView(n=len(values), mean=math.fsum(values) / len(values) if values else None)


def swept_parameters(params: Sequence[dict[str, Scalar]]) -> list[str]:
    """The config fields that take two or more values across ``params``, in field order."""
    values: dict[str, set[str]] = {}
    for flat in params:
        for key, value in flat.items():
            if value is not None:
                values.setdefault(key, set()).add(repr(value))
    return [key for key, seen in values.items() if len(seen) > 1]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indexes of the points no other point beats on both throughput (x, higher is better)
    and energy per token (y, lower is better), sorted by throughput.
    """
    front = [
        i
        for i, (x, y) in enumerate(points)
        if not any(
            (x2 >= x and y2 <= y) and (x2 > x or y2 < y)
            for j, (x2, y2) in enumerate(points)
            if j != i
        )
    ]
    return sorted(front, key=lambda i: points[i][0])


# ------------------------------------------------------------------ sections


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def _sig(value: float) -> str:
    """About four significant digits, with thousands separators and no exponent in between."""
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if not 1e-3 <= magnitude < 1e9:
        return f"{value:.3e}"
    decimals = max(0, 3 - math.floor(math.log10(magnitude)))
    return f"{value:,.{decimals}f}"


def _num(value: float | None, unit: str = "", spec: str | None = None) -> str:
    if value is None or not math.isfinite(value):
        return '<span class="na">n/a</span>'
    text = _sig(value) if spec is None else format(value, spec)
    return escape(f"{text} {unit}".strip())


def _agg(agg: AggregateView, unit: str) -> str:
    if agg.mean is None:
        return '<span class="na">n/a</span>'
    if agg.ci95_half_width is None:
        text = _sig(agg.mean)
    else:
        # the mean to the interval's precision: two significant digits of the half-width
        half = agg.ci95_half_width
        decimals = max(0, 1 - math.floor(math.log10(half))) if half > 0 else 4
        text = f"{agg.mean:,.{decimals}f} ± {half:,.{decimals}f}"
    return escape(f"{text} {unit}") + f' <span class="n">(n={agg.n})</span>'


def _when(value: datetime | None) -> str:
    return "n/a" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _distinct(values: Iterable[str | None]) -> str:
    seen = list(dict.fromkeys(v for v in values if v))
    return escape(", ".join(seen)) if seen else '<span class="na">n/a</span>'


def _summary(results: ResultSet, runs: Sequence[RunResult]) -> str:
    energies = [r.result.energy.total_j for r in runs]
    known = [e for e in energies if e is not None]
    total = _num(math.fsum(known), "J") if known else _num(None)
    if known and len(known) < len(energies):
        total += f" ({len(energies) - len(known)} runs without an energy figure)"
    n_planned = len(results.entries)
    rows = [
        ("kind", "study" if results.kind == "study" else "single run"),
        ("folder", escape(str(results.path))),
        ("status", escape(results.status)),
        ("started", escape(_when(results.created_at))),
        (
            "runs",
            f"{len(runs)} completed, {results.n_failed} failed, {n_planned} planned",
        ),
        ("models", _distinct(r.result.model.name for r in runs)),
        ("engines", _distinct(f"{r.result.engine} {r.result.engine_version or ''}" for r in runs)),
        ("energy", _distinct(_energy_source(r.result) for r in runs)),
        ("total energy (completed runs)", total),
    ]
    if results.study is not None and results.study.summary.wall_time_s is not None:
        rows.append(("wall time", _num(results.study.summary.wall_time_s, "s", ",.1f")))
    if results.design_hash:
        rows.append(("design hash", escape(results.design_hash)))
    return _section("Summary", _kv(rows), "summary")


def _energy_source(result: ExperimentResult) -> str:
    e = result.energy
    domains = " + ".join(d.domain for d in e.domains) or "no domain"
    if e.method is None:
        return f"{e.sampler} ({domains}; no reading)"
    return f"{e.sampler}: {e.method}, {e.confidence} confidence ({domains})"


def _config_table(results: ResultSet, configs: Sequence[_Config], swept: Sequence[str]) -> str:
    planned: dict[str, int] = {}
    for entry in results.entries:
        planned[entry.config_hash] = planned.get(entry.config_hash, 0) + 1
    header = [
        "#",
        "config",
        *swept,
        "runs",
        "J / output token (mean ± 95 % CI)",
        "output tokens/s (mean ± 95 % CI)",
        "mean power",
        "warnings",
    ]
    rows = []
    for c in configs:
        powers = [p for r in c.runs if (p := r.result.power.mean_w) is not None]
        codes = sorted({w.code for r in c.runs for w in r.result.warnings})
        rows.append(
            [
                str(c.index),
                escape(c.label),
                *[escape(_param(c.params.get(p))) for p in swept],
                f"{len(c.runs)}/{planned.get(c.config_hash, len(c.runs))}",
                _agg(c.jpt, "J"),
                _agg(c.tps, "tok/s"),
                _num(math.fsum(powers) / len(powers) if powers else None, "W"),
                escape(", ".join(codes)) or "none",
            ]
        )
    note = (
        '<p class="note">Mean across completed cycles; ± is the half-width of the two-sided '
        "95 % Student-t interval of the mean (n/a below two cycles).</p>"
    )
    if not configs:
        return _section("Configs", '<p class="na">no completed run</p>', "configs")
    return _section("Configs", note + _table(header, rows, "wide"), "configs")


def _param(value: Scalar) -> str:
    return "—" if value is None else str(value)


def _sweep_plots(configs: Sequence[_Config], swept: Sequence[str]) -> str:
    if not swept:
        body = '<p class="note">Nothing was swept: every config takes the same values.</p>'
        return _section("Against the swept parameters", body, "sweeps")
    charts = []
    for param in swept:
        for read, agg_of, name, unit in (
            (_jpt, lambda c: c.jpt, "J per output token", "J"),
            (_tps, lambda c: c.tps, "output tokens/s", "tok/s"),
        ):
            charts.append(_sweep_chart(configs, swept, param, read, agg_of, name, unit))
    return _section("Against the swept parameters", _grid(charts), "sweeps")


def _sweep_chart(
    configs: Sequence[_Config],
    swept: Sequence[str],
    param: str,
    read: Callable[[ExperimentResult], float | None],
    agg_of: Callable[[_Config], AggregateView],
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

    def x_of(c: _Config) -> float:
        if numeric:
            return numbers[c.config_hash]
        return float(categories.index(str(c.params[param])))

    others = [p for p in swept if p != param]
    groups: dict[str, list[_Config]] = {}
    for c in having:
        key = ", ".join(f"{p}={_param(c.params.get(p))}" for p in others)
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
                    f"#{c.index} {c.label}: {_plain(a.mean)} {unit}"
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


def _plain(value: float | None) -> str:
    return "n/a" if value is None else _sig(value)


def _grid(items: Sequence[str]) -> str:
    return '<div class="grid">' + "".join(f"<figure>{item}</figure>" for item in items) + "</div>"


def _pareto(configs: Sequence[_Config]) -> str:
    placed = [c for c in configs if c.jpt.mean is not None and c.tps.mean is not None]
    points = [(float(c.tps.mean or 0.0), float(c.jpt.mean or 0.0)) for c in placed]
    front = pareto_front(points)
    measured = [
        (x, y)
        for c in placed
        for r in c.runs
        if (x := _tps(r.result)) is not None and (y := _jpt(r.result)) is not None
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
            _num(points[i][0], "tok/s"),
            _num(points[i][1], "J"),
        ]
        for i in front
    ]
    table = (
        _table(["#", "config on the front", "output tokens/s", "J / output token"], rows)
        if rows
        else ""
    )
    note = (
        '<p class="note">A config is on the front when no other config is both faster and '
        "cheaper per token (config means across cycles).</p>"
    )
    return _section("Energy–throughput Pareto front", note + _grid([svg]) + table, "pareto")


def _traces(runs: Sequence[RunResult]) -> str:
    if not runs:
        return _section("Traces", '<p class="na">no completed run</p>', "traces")
    chosen = _trace_runs(runs)
    options = "".join(
        f'<option value="run-{i}">{escape(_run_name(run))}</option>' for i, run in enumerate(chosen)
    )
    blocks = "".join(
        f'<div class="trace" id="run-{i}"{"" if i == 0 else " hidden"}>{_run_traces(run)}</div>'
        for i, run in enumerate(chosen)
    )
    note = ""
    if len(chosen) < len(runs):
        note = (
            f'<p class="note">Traces of {len(chosen)} of {len(runs)} runs are included (the '
            "first cycle of each config first); report a single run folder for any other.</p>"
        )
    legend = (
        '<p class="note">Grey: warm-up. Blue: the measured window (dashed edges). '
        "Red: throttled (NVML thermal, power-cap or power-brake reasons). Lines are thinned "
        f"to at most {MAX_TRACE_POINTS} points, keeping minima and maxima.</p>"
    )
    picker = f'<label>run <select id="trace-run">{options}</select></label>'
    return _section("Traces over time", picker + note + legend + blocks, "traces")


def _trace_runs(runs: Sequence[RunResult]) -> list[RunResult]:
    if len(runs) <= MAX_TRACE_RUNS:
        return list(runs)
    first: dict[str, RunResult] = {}
    for run in runs:
        first.setdefault(run.entry.config_hash, run)
    rest = [run for run in runs if run not in first.values()]
    return sorted(
        [*first.values(), *rest][:MAX_TRACE_RUNS], key=lambda r: (r.entry.index, r.entry.cycle)
    )


def _run_name(run: RunResult) -> str:
    return f"{run.entry.key} {run.entry.label}"


def _run_traces(run: RunResult) -> str:
    result = run.result
    rows = [row for row in result.timeseries if isinstance(row.get("t_s"), int | float)]
    if not rows:
        return '<p class="na">This run has no trace (timeseries.parquet missing or empty).</p>'
    devices = list(dict.fromkeys(str(row["device"]) for row in rows))
    bands, rules = _trace_marks(result, rows, devices)
    charts = []
    missing = []
    for column, name, unit, noun in _TRACE_QUANTITIES:
        series = []
        for device in devices:
            points = [
                (float(row["t_s"]), _float(row.get(column)))
                for row in rows
                if row["device"] == device
            ]
            if not any(y is not None for _, y in points):
                continue
            xs, ys = downsample([p[0] for p in points], [p[1] for p in points], MAX_TRACE_POINTS)
            series.append(Series(device, xs, ys, mode="lines"))
        if not series:
            missing.append(noun)
            continue
        charts.append(
            chart(
                series,
                title=f"{name} · {_run_name(run)}",
                x_label="time since the trace started (s)",
                y_label=f"{name} ({unit})",
                bands=bands,
                rules=rules,
                y_from_zero=column in ("power_w", "utilisation_pct"),
            )
        )
    note = f'<p class="note">No {", ".join(missing)} readings in this trace.</p>' if missing else ""
    return _grid(charts) + note


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _trace_marks(
    result: ExperimentResult, rows: Sequence[dict[str, Any]], devices: Sequence[str]
) -> tuple[list[Band], list[Rule]]:
    bands: list[Band] = []
    rules: list[Rule] = []
    trace = result.trace
    if trace is not None:
        if trace.warmup_start_s is not None and trace.window_start_s is not None:
            bands.append(Band(trace.warmup_start_s, trace.window_start_s, "warm-up", _WARMUP_COLOR))
        if trace.window_start_s is not None and trace.window_end_s is not None:
            bands.append(
                Band(trace.window_start_s, trace.window_end_s, "window", _WINDOW_COLOR, 0.12)
            )
        for edge, label in (
            (trace.window_start_s, "window start"),
            (trace.window_end_s, "window end"),
        ):
            if edge is not None:
                rules.append(Rule(edge, label))
    for device in devices:
        times = [
            (float(row["t_s"]), row.get("throttle_reasons"))
            for row in rows
            if row["device"] == device
        ]
        for start, end in _throttled_spans(times):
            bands.append(Band(start, end, "throttled", _THROTTLE_COLOR, 0.25))
    return bands, rules


def _throttled_spans(samples: Sequence[tuple[float, object]]) -> list[tuple[float, float]]:
    """Stretches where the reason bits include throttling; a sample holds until the next."""
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for i, (t, reasons) in enumerate(samples):
        throttled = isinstance(reasons, int) and bool(reasons & THROTTLE_MASK)
        if throttled and start is None:
            start = t
        if not throttled and start is not None:
            spans.append((start, t))
            start = None
        if throttled and i == len(samples) - 1 and start is not None:
            spans.append((start, t))
    return spans


def _runs_table(results: ResultSet, runs: Sequence[RunResult]) -> str:
    by_key = {(r.entry.index, r.entry.cycle): r.result for r in runs}
    rows = []
    for entry in sorted(results.entries, key=lambda e: (e.index, e.cycle)):
        result = by_key.get((entry.index, entry.cycle))
        rows.append(
            [
                escape(entry.key),
                escape(entry.label),
                escape(entry.status),
                _num(result.window.duration_s, "s") if result else "",
                _num(_tps(result), "tok/s") if result else "",
                _num(_jpt(result), "J") if result else "",
                _num(result.energy.total_j, "J") if result else "",
                escape(entry.folder.name if entry.folder and result else (entry.error or "")),
            ]
        )
    header = [
        "run",
        "config",
        "status",
        "window",
        "output tokens/s",
        "J / output token",
        "energy",
        "folder or error",
    ]
    body = f"<details><summary>{len(rows)} runs</summary>{_table(header, rows, 'wide')}</details>"
    return _section("Runs", body, "runs")


def _warnings(runs: Sequence[RunResult]) -> str:
    tallies = tally_warnings(runs)
    if not tallies:
        return _section("Warnings", "<p>No measurement warning in any run.</p>", "warnings")
    rows = [
        [escape(t.code), f"{t.n_runs}/{len(runs)}", escape(t.message), escape(t.remedy)]
        for t in tallies
    ]
    return _section(
        "Warnings", _table(["code", "runs", "what (first run)", "remedy"], rows), "warnings"
    )


def _environment(runs: Sequence[RunResult]) -> str:
    if not runs:
        return _section("Environment", '<p class="na">no completed run</p>', "environment")
    env = runs[0].result.environment
    gpus = [
        ", ".join(f"{k}: {v}" for k, v in a.items() if k in ("name", "uuid", "memory_total_mib"))
        for a in env.accelerators
    ]
    rows = [
        ("host", escape(env.hostname)),
        ("OS", escape(f"{env.os}, kernel {env.kernel}")),
        ("CPU", escape(f"{env.cpu_model or 'unknown'} ({env.n_cpus_logical} logical CPUs)")),
        ("memory", _num(env.memory_total_mib, "MiB", ",.0f")),
        ("accelerators", escape("; ".join(gpus)) or "none"),
        ("CUDA / driver", escape(f"{env.cuda_version or 'n/a'} / {env.driver_version or 'n/a'}")),
        ("container", escape(env.container or "none detected")),
        ("Python", escape(env.python)),
        (
            "packages",
            escape(", ".join(f"{k} {v}" for k, v in env.packages.items() if v)) or "n/a",
        ),
    ]
    hosts = {r.result.environment.hostname for r in runs}
    note = ""
    if len(hosts) > 1:
        note = (
            f'<p class="note">The runs span {len(hosts)} hosts ({escape(", ".join(sorted(hosts)))})'
            "; shown: the first run's.</p>"
        )
    return _section("Environment", note + _kv(rows), "environment")


def _methodology(results: ResultSet, runs: Sequence[RunResult]) -> str:
    results_of = [r.result for r in runs]
    rows = [
        ("methodology version", _distinct(r.methodology.version for r in results_of)),
        ("measured window", _distinct(r.methodology.window for r in results_of)),
        ("energy", _distinct(_energy_source(r) for r in results_of)),
        ("energy sampler chosen", _distinct(r.energy.sampler_reason for r in results_of)),
        ("baseline", _distinct(_baseline(r) for r in results_of) + _idle_range(results_of)),
        ("warm-up", _distinct(_warmup(r) for r in results_of)),
        (
            "trace sampling",
            _distinct(f"every {r.config.measurement.sample_interval_ms} ms" for r in results_of),
        ),
        ("latency", _distinct(r.latency.definition for r in results_of)),
        ("FLOPs", _distinct(r.flops.method if r.flops else None for r in results_of)),
        ("tool version", _distinct(r.tool_version for r in results_of)),
    ]
    if results.study is not None:
        p = results.study.protocol
        gaps = (
            f"{p.experiment_gap_s or 0:g} s between experiments, "
            f"{p.cycle_gap_s or 0:g} s between cycles"
        )
        rows.append(
            (
                "study protocol",
                escape(
                    f"{p.n_cycles} cycles, order {p.experiment_order}, {gaps}, "
                    f"timeout {p.experiment_timeout_s or 0:g} s per experiment"
                ),
            )
        )
    return _section("Methodology", _kv(rows), "methodology")


def _baseline(result: ExperimentResult) -> str:
    b = result.energy.baseline
    if b is None:
        return f"none: {result.energy.baseline_note or 'not measured'}"
    return f"{b.strategy} ({b.method}), {b.duration_s:.2g} s of idle power"


def _idle_range(results: Sequence[ExperimentResult]) -> str:
    idle = [r.energy.baseline.power_w for r in results if r.energy.baseline is not None]
    if not idle:
        return ""
    if max(idle) - min(idle) < 0.05:
        return escape(f"; idle power {idle[0]:.1f} W")
    return escape(f"; idle power {min(idle):.1f}–{max(idle):.1f} W across runs")


def _warmup(result: ExperimentResult) -> str:
    w = result.warmup
    if w.mode == "disabled":
        return "disabled"
    floor = f", thermal floor {w.thermal_floor_s:.0f} s" if w.thermal_floor_s else ""
    return f"{w.mode}: {w.n_runs} runs{floor}"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:0 16px 48px;
max-width:1280px;color:#222;line-height:1.4;font-size:15px}
h1{font-size:1.5em;margin:20px 0 8px}h2{font-size:1.2em;margin:28px 0 8px;
border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
table.wide td{white-space:nowrap}
thead th{background:#f3f3f3}table.kv th{background:#f7f7f7;white-space:nowrap}
table.wide{display:block;overflow-x:auto;max-width:100%}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr));gap:12px}
figure{margin:0}svg.plot{width:100%;height:auto;max-width:760px;background:#fff}
.na{color:#888}.n{color:#777;font-size:12px}.note{color:#555;font-size:13px;margin:4px 0}
select{font-size:14px;margin:4px 0 8px}
"""

_SCRIPT = """
(function () {
  var select = document.getElementById("trace-run");
  if (!select) { return; }
  function show() {
    var blocks = document.querySelectorAll("div.trace");
    for (var i = 0; i < blocks.length; i++) { blocks[i].hidden = blocks[i].id !== select.value; }
  }
  select.addEventListener("change", show);
  show();
})();
"""
