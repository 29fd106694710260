"""Results as tables for the terminal (stdout)."""

from __future__ import annotations

import json

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llenergymeasure.cli.serving_render import serving_rows
from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.engines.registry import Runner
from llenergymeasure.experiment.preflight import Plan
from llenergymeasure.records.energy import DeviceThermal, DomainEnergy
from llenergymeasure.records.result import ExperimentResult, LatencyStats

__all__ = ["print_plan", "result_table", "warnings_table"]


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
        ("prompts", _prompts(result)),
        (
            "input / output tokens",
            f"{result.tokens.n_input_tokens:,} / {result.tokens.n_output_tokens:,}",
        ),
        ("window", _window(result)),
        ("output tokens/s", f"{result.throughput.output_tokens_per_s:,.2f}"),
        ("latency p50 / p90 / p99", _ms(result.latency.e2e)),
        ("TTFT p50 / p90 / p99", _ms(result.latency.ttft)),
        ("inter-token p50 / p90 / p99", _ms(result.latency.itl)),
        ("energy", _headline(result, method)),
        *[(f"  {d.domain}", _domain(d)) for d in e.domains if len(e.domains) > 1 or d.gap_pct],
        *_estimated_rows(result),
        ("energy adjusted for idle", _adjusted(result)),
        ("energy per output token", _per_token(result)),
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
        *_compute_rows(result),
        ("peak host memory (RSS)", _num(result.memory.peak_host_rss_mib, "MiB", 0)),
        ("peak device memory", _num(result.memory.peak_device_mib, "MiB", 0)),
        *serving_rows(result),
        ("warnings", ", ".join(w.code for w in result.warnings) or "none"),
    ]
    for name, value in rows:
        table.add_row(name, escape(value))
    return table


def _prompts(result: ExperimentResult) -> str:
    t, passes = result.tokens, result.window.n_passes
    if passes > 1:
        return f"{t.n_prompts} × {passes} passes = {t.n_completed} requests"
    return f"{t.n_completed} of {t.n_prompts}"


def _window(result: ExperimentResult) -> str:
    w = result.window
    text = f"{w.duration_s:,.2f} s"
    if w.n_passes > 1:
        text += f" ({w.n_passes} passes over the prompts to reach {w.min_window_s or 0:g} s)"
    return text


def _headline(result: ExperimentResult, method: str) -> str:
    e = result.energy
    measured = [d.domain for d in e.domains if d.method != "estimated"]
    if e.total_j is None and e.estimated is not None:
        return "n/a (no measured domain on this host; the estimate is below, apart)"
    return f"{_energy_j(e.total_j)} on {' + '.join(measured) or 'no domain'} ({method})"


def _per_token(result: ExperimentResult) -> str:
    e = result.energy
    if e.total_j is None and e.estimated is not None:
        return "n/a (nothing measured; the estimate per output token is above)"
    return _energy_j(e.j_per_output_token, 4)


def _domain(d: DomainEnergy) -> str:
    text = f"{_energy_j(d.energy_j)} ({d.method}, {d.source})"
    if d.gap_pct is not None:
        text += f"; {d.power_source} power integrated {d.gap_pct:+.2f} % from it"
    return text


def _estimated_rows(result: ExperimentResult) -> list[tuple[str, str]]:
    est = result.energy.estimated
    if est is None:
        return []
    where = " + ".join(est.domains)
    return [
        (
            "energy, estimated (not measured)",
            f"{_energy_j(est.total_j)} on {where} (estimated, low confidence; not in the total)",
        ),
        ("  estimated per output token", _energy_j(est.j_per_output_token, 4)),
    ]


def _compute_rows(result: ExperimentResult) -> list[tuple[str, str]]:
    """FLOPs by phase, MFU/MBU, and the attributed energy per prefill and decode token."""
    rows = []
    c = result.compute
    if c is not None:
        rows.append(("prefill / decode FLOPs", f"{c.prefill.flops:,.3g} / {c.decode.flops:,.3g}"))
        mfu = "n/a" if c.mfu is None else f"{100 * c.mfu:,.2f} %"
        mbu = "n/a" if c.mbu is None else f"{100 * c.mbu:,.2f} %"
        why = f" ({c.peak_note})" if c.peak_note else ""
        rows.append(("MFU / decode MBU", f"{mfu} / {mbu}{why}"))
    split = result.phase_energy
    if split is not None and split.power_source == "averaged":
        rows.append(
            (
                "energy per prefill / decode token",
                "n/a (the GPU's power reads a 1 s average: too coarse to split; see "
                "phase_energy.note)",
            )
        )
    elif split is not None:
        rows.append(
            (
                "energy per prefill / decode token",
                f"{_energy_j(split.prefill.j_per_token, 4)} / "
                f"{_energy_j(split.decode.j_per_token, 4)} (attributed, "
                f"{split.energy_method}; trace every {split.trace_interval_ms} ms)",
            )
        )
    return rows


def _adjusted(result: ExperimentResult) -> str:
    e = result.energy
    if e.baseline is None:
        return f"n/a (no baseline: {e.baseline_note or 'not measured'})"
    b = e.baseline
    text = (
        f"{_energy_j(e.adjusted_j)} (idle {b.power_w:,.1f} W with the engine loaded, over "
        f"{b.duration_s:,.0f} s, {b.strategy}; static share {_energy_j(e.static_j)})"
    )
    bare = e.idle_no_context
    if bare is not None:
        text += f"; idle with no CUDA context {bare.power_w:,.1f} W ({bare.note})"
    return text


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
    if t.power_capped_s:
        parts.append(f"at the power cap {t.power_capped_s:,.1f} s (not throttling)")
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


def print_plan(out: Console, config: ExperimentConfig, plan: Plan) -> None:
    """``llem run --dry-run`` of one experiment: the resolved config, then the plan."""
    out.print("# resolved config", style="bold")
    out.print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), markup=False)
    table = Table(title="plan (nothing has run)", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    task = config.task
    memory = f"~{plan.memory_estimate_mib:,.0f} MiB" if plan.memory_estimate_mib else "unknown"
    warm = config.measurement.warmup
    for name, value in [
        ("runs", "1 experiment, 1 cycle"),
        ("engine", f"{plan.engine.name} on {', '.join(plan.devices)}" + _in(plan.runner)),
        ("model", f"{task.model} → {plan.model.path} ({plan.model.kind})"),
        ("prompts", f"{task.dataset.n_prompts} from {task.dataset.source}, {task.dataset.order}"),
        (
            "tokens",
            f"input ≤ {task.max_input_tokens}, output ≤ {task.max_output_tokens} per prompt",
        ),
        ("batch size", str(config.batch_size)),
        ("warm-up", f"{warm.n_warmup} runs of one batch" if warm.enabled else "disabled"),
        ("energy sampler", f"{plan.sampler.name}: {plan.sampler_reason}"),
        ("model memory estimate", memory),
        ("config hash", json.dumps(measurement_config_hash(config))),
    ]:
        table.add_row(name, value)
    out.print(table)


def _in(runner: Runner | None) -> str:
    return "" if runner is None else f", run by {runner.python} ({runner.source})"
