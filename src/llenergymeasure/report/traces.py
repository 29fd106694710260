"""The power, temperature, clock and utilisation traces of each run, with the warm-up, the
window and throttled stretches shaded.

Traces are thinned to :data:`MAX_TRACE_POINTS` points per line (peaks kept), and at most
:data:`MAX_TRACE_RUNS` runs carry traces, so the file stays small for large studies.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.records.timeseries import THROTTLE_MASK
from llenergymeasure.report.chart import chart
from llenergymeasure.report.markup import grid, section
from llenergymeasure.report.svg import SKY_BLUE, VERMILLION, Band, Rule, Series, downsample
from llenergymeasure.results.collection import RunResult

__all__ = ["MAX_TRACE_POINTS", "MAX_TRACE_RUNS", "traces_section"]


MAX_TRACE_POINTS = 600
MAX_TRACE_RUNS = 48
_WARMUP_COLOR = "#888888"


# (column, chart name, unit, what the note says is missing)
_TRACE_QUANTITIES: tuple[tuple[str, str, str, str], ...] = (
    ("power_w", "Power", "W", "power"),
    ("temperature_c", "Temperature", "°C", "temperature"),
    ("sm_clock_mhz", "SM clock", "MHz", "SM clock"),
    ("utilisation_pct", "Utilisation", "%", "utilisation"),
)


def traces_section(runs: Sequence[RunResult]) -> str:
    if not runs:
        return section("Traces", '<p class="na">no completed run</p>', "traces")
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
    return section("Traces over time", picker + note + legend + blocks, "traces")


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
    return grid(charts) + note


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
            bands.append(Band(trace.window_start_s, trace.window_end_s, "window", SKY_BLUE, 0.12))
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
            bands.append(Band(start, end, "throttled", VERMILLION, 0.25))
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
