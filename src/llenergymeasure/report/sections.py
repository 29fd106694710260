"""The report's descriptive sections: summary, every run, warnings, environment and
methodology."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.report.configs import j_per_token, tokens_per_s
from llenergymeasure.report.markup import distinct, html_table, kv_table, number, section, when
from llenergymeasure.results.collection import ResultSet, RunResult, tally_warnings

__all__ = [
    "energy_source",
    "environment_section",
    "methodology_section",
    "runs_section",
    "summary_section",
    "warnings_section",
]


def summary_section(results: ResultSet, runs: Sequence[RunResult]) -> str:
    energies = [r.result.energy.total_j for r in runs]
    known = [e for e in energies if e is not None]
    total = number(math.fsum(known), "J") if known else number(None)
    if known and len(known) < len(energies):
        total += f" ({len(energies) - len(known)} runs without an energy figure)"
    n_planned = len(results.entries)
    rows = [
        ("kind", "study" if results.kind == "study" else "single run"),
        ("folder", escape(str(results.path))),
        ("status", escape(results.status)),
        ("started", escape(when(results.created_at))),
        (
            "runs",
            f"{len(runs)} completed, {results.n_failed} failed, {n_planned} planned",
        ),
        ("models", distinct(r.result.model.name for r in runs)),
        ("engines", distinct(f"{r.result.engine} {r.result.engine_version or ''}" for r in runs)),
        ("energy", distinct(energy_source(r.result) for r in runs)),
        ("total energy (completed runs)", total),
    ]
    if results.study is not None and results.study.summary.wall_time_s is not None:
        rows.append(("wall time", number(results.study.summary.wall_time_s, "s", ",.1f")))
    if results.design_hash:
        rows.append(("design hash", escape(results.design_hash)))
    return section("Summary", kv_table(rows), "summary")


def energy_source(result: ExperimentResult) -> str:
    e = result.energy
    domains = " + ".join(d.domain for d in e.domains) or "no domain"
    if e.method is None:
        return f"{e.sampler} ({domains}; no reading)"
    return f"{e.sampler}: {e.method}, {e.confidence} confidence ({domains})"


def runs_section(results: ResultSet, runs: Sequence[RunResult]) -> str:
    by_key = {(r.entry.index, r.entry.cycle): r.result for r in runs}
    rows = []
    for entry in sorted(results.entries, key=lambda e: (e.index, e.cycle)):
        result = by_key.get((entry.index, entry.cycle))
        rows.append(
            [
                escape(entry.key),
                escape(entry.label),
                escape(entry.status),
                number(result.window.duration_s, "s") if result else "",
                number(tokens_per_s(result), "tok/s") if result else "",
                number(j_per_token(result), "J") if result else "",
                number(result.energy.total_j, "J") if result else "",
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
    body = (
        f"<details><summary>{len(rows)} runs</summary>{html_table(header, rows, 'wide')}</details>"
    )
    return section("Runs", body, "runs")


def warnings_section(runs: Sequence[RunResult]) -> str:
    tallies = tally_warnings(runs)
    if not tallies:
        return section("Warnings", "<p>No measurement warning in any run.</p>", "warnings")
    rows = [
        [escape(t.code), f"{t.n_runs}/{len(runs)}", escape(t.message), escape(t.remedy)]
        for t in tallies
    ]
    return section(
        "Warnings", html_table(["code", "runs", "what (first run)", "remedy"], rows), "warnings"
    )


def environment_section(runs: Sequence[RunResult]) -> str:
    if not runs:
        return section("Environment", '<p class="na">no completed run</p>', "environment")
    env = runs[0].result.environment
    gpus = [
        ", ".join(f"{k}: {v}" for k, v in a.items() if k in ("name", "uuid", "memory_total_mib"))
        for a in env.accelerators
    ]
    rows = [
        ("host", escape(env.hostname)),
        ("OS", escape(f"{env.os}, kernel {env.kernel}")),
        ("CPU", escape(f"{env.cpu_model or 'unknown'} ({env.n_cpus_logical} logical CPUs)")),
        ("memory", number(env.memory_total_mib, "MiB", ",.0f")),
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
    return section("Environment", note + kv_table(rows), "environment")


def methodology_section(results: ResultSet, runs: Sequence[RunResult]) -> str:
    results_of = [r.result for r in runs]
    rows = [
        ("methodology version", distinct(r.methodology.version for r in results_of)),
        ("measured window", distinct(r.methodology.window for r in results_of)),
        ("energy", distinct(energy_source(r) for r in results_of)),
        ("energy sampler chosen", distinct(r.energy.sampler_reason for r in results_of)),
        ("baseline", distinct(_baseline(r) for r in results_of) + _idle_range(results_of)),
        ("warm-up", distinct(_warmup(r) for r in results_of)),
        (
            "trace sampling",
            distinct(f"every {r.config.measurement.sample_interval_ms} ms" for r in results_of),
        ),
        ("latency", distinct(r.latency.definition for r in results_of)),
        ("FLOPs", distinct(r.flops.method if r.flops else None for r in results_of)),
        ("tool version", distinct(r.tool_version for r in results_of)),
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
    return section("Methodology", kv_table(rows), "methodology")


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
