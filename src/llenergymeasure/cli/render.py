"""Results as tables for the terminal (stdout)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from llenergymeasure.cli.serving_render import serving_rows
from llenergymeasure.records.energy import DeviceThermal
from llenergymeasure.records.result import ExperimentResult, LatencyStats

__all__ = ["result_table", "warnings_table"]


def _ms(stats: LatencyStats | None) -> str:
    if stats is None:
        return "n/a"
    return f"{stats.p50_ms:,.1f} / {stats.p90_ms:,.1f} / {stats.p99_ms:,.1f} ms"


def _num(value: float | None, unit: str, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f} {unit}"


def _energy_j(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a (no reading)"
    return f"{value:,.{digits}f} J"


def result_table(result: ExperimentResult) -> Table:
    """The headline figures of one experiment, each labelled with how it was obtained."""
    e = result.energy
    table = Table(title=f"llem · {result.experiment_id}", show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value")
    method = (
        f"{e.method}, {e.confidence} confidence, sampler `{e.sampler}`" if e.method else e.sampler
    )
    rows = [
        ("model", f"{result.model.name} ({result.model.dtype}, {result.model.device})"),
        ("engine", f"{result.engine} {result.engine_version or ''}".strip()),
        ("prompts", f"{result.tokens.n_completed} of {result.tokens.n_prompts}"),
        (
            "input / output tokens",
            f"{result.tokens.n_input_tokens:,} / {result.tokens.n_output_tokens:,}",
        ),
        ("window", f"{result.window.duration_s:,.2f} s"),
        ("output tokens/s", f"{result.throughput.output_tokens_per_s:,.2f}"),
        ("latency p50 / p90 / p99", _ms(result.latency.e2e)),
        ("TTFT p50 / p90 / p99", _ms(result.latency.ttft)),
        ("inter-token p50 / p90 / p99", _ms(result.latency.itl)),
        ("energy", f"{_energy_j(e.total_j)} on {_domains(result)} ({method})"),
        *[
            (f"  {d.domain}", f"{_energy_j(d.energy_j)} ({d.method}, {d.source})")
            for d in e.domains
            if len(e.domains) > 1
        ],
        ("energy adjusted for idle", _adjusted(result)),
        ("energy per output token", _energy_j(e.j_per_output_token, 4)),
        *([("CO2 gross / adjusted", _co2(result))] if e.co2_g is not None else []),
        (
            "mean / peak power",
            f"{_num(result.power.mean_w, 'W')} / {_num(result.power.peak_w, 'W')}",
        ),
        *[
            (
                f"  {p.device}",
                f"mean {p.mean_w:,.1f} W, p99 {p.p99_w:,.1f} W, peak {p.peak_w:,.1f} W",
            )
            for p in result.power.devices
        ],
        *[(f"  {t.device} thermal", _thermal(t)) for t in result.thermal],
        *(
            [("achieved FLOP/s", f"{result.flops.achieved_flops_per_s:,.3g}")]
            if result.flops is not None
            else []
        ),
        ("peak host memory (RSS)", _num(result.memory.peak_host_rss_mib, "MiB", 0)),
        ("peak device memory", _num(result.memory.peak_device_mib, "MiB", 0)),
        *serving_rows(result),
        ("warnings", ", ".join(w.code for w in result.warnings) or "none"),
    ]
    for name, value in rows:
        table.add_row(name, escape(value))
    return table


def _domains(result: ExperimentResult) -> str:
    return " + ".join(d.domain for d in result.energy.domains) or "no domain"


def _adjusted(result: ExperimentResult) -> str:
    e = result.energy
    if e.baseline is None:
        return f"n/a (no baseline: {e.baseline_note or 'not measured'})"
    b = e.baseline
    return (
        f"{_energy_j(e.adjusted_j)} (idle {b.power_w:,.1f} W over {b.duration_s:,.0f} s, "
        f"{b.strategy}; static share {_energy_j(e.static_j)})"
    )


def _co2(result: ExperimentResult) -> str:
    e = result.energy
    adjusted = "n/a" if e.co2_adjusted_g is None else f"{e.co2_adjusted_g:,.4f} g"
    return f"{e.co2_g:,.4f} g / {adjusted} at {e.carbon_intensity_g_per_kwh:g} g/kWh"


def _thermal(t: DeviceThermal) -> str:
    parts = []
    if t.max_temperature_c is not None:
        parts.append(f"max {t.max_temperature_c:,.0f} °C")
    if t.temperature_drift_c is not None:
        parts.append(f"drift {t.temperature_drift_c:+,.1f} °C")
    if t.mean_sm_clock_mhz is not None:
        parts.append(f"SM clock mean {t.mean_sm_clock_mhz:,.0f} MHz")
    if t.throttled_s:
        parts.append(f"throttled {t.throttled_s:,.1f} s ({', '.join(t.reasons)})")
    return ", ".join(parts) or "n/a"


def warnings_table(result: ExperimentResult) -> Table | None:
    """Every measurement warning with its remedy; None when there are none."""
    if not result.warnings:
        return None
    table = Table(title="warnings", title_justify="left")
    table.add_column("code", style="yellow")
    table.add_column("what")
    table.add_column("remedy")
    for w in result.warnings:
        table.add_row(w.code, escape(w.message), escape(w.remedy))
    return table
