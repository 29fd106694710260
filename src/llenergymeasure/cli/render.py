"""Results as tables for the terminal (stdout)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from llenergymeasure.results.models import ExperimentResult, LatencyStats

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
        ("energy", f"{_energy_j(e.total_j)} ({method})"),
        ("energy per output token", _energy_j(e.j_per_output_token, 4)),
        ("mean power", _num(result.power.mean_w, "W")),
        ("peak host memory (RSS)", _num(result.memory.peak_host_rss_mib, "MiB", 0)),
        ("peak device memory", _num(result.memory.peak_device_mib, "MiB", 0)),
        ("warnings", ", ".join(w.code for w in result.warnings) or "none"),
    ]
    if e.co2_g is not None:
        rows.insert(11, ("CO2", f"{e.co2_g:,.4f} g"))
    if result.flops is not None:
        rows.insert(-3, ("achieved FLOP/s", f"{result.flops.achieved_flops_per_s:,.3g}"))
    for name, value in rows:
        table.add_row(name, escape(value))
    return table


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
