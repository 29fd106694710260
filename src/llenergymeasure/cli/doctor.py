"""``llem doctor`` (alias ``llem config``): what this machine can measure, and why not."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llenergymeasure.config.loading import load_user_config
from llenergymeasure.experiment.doctor import DoctorReport, diagnose

__all__ = ["doctor_command"]


def doctor_command(
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Show GPUs, CPU, energy samplers and engines, with the reason for anything missing."""
    report = diagnose(load_user_config())
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2, default=str) + "\n")
        return
    out = Console(highlight=False, soft_wrap=True)
    if not report.survey.gpus:
        out.print(f"GPUs: none ({escape(report.survey.reason or 'NVML sees no GPU')})")
    for table in _tables(report):
        out.print(table)
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


def _tables(report: DoctorReport) -> list[Table]:
    gpus = [_gpu_table(report)] if report.survey.gpus else []
    return [*gpus, _cpu_table(report), _sampler_table(report), _engine_table(report)]


def _gpu_table(report: DoctorReport) -> Table:
    survey = report.survey
    versions = f"driver {survey.driver_version or 'n/a'}, CUDA {survey.cuda_version or 'n/a'}"
    gpus = Table(title=f"GPUs ({versions})", title_justify="left")
    for column in (
        "index",
        "name",
        "uuid",
        "VRAM MiB",
        "power limit W (default)",
        "persistence",
        "MIG",
        "ECC",
        "SM MHz",
        "temp °C",
    ):
        gpus.add_column(column)
    for g in survey.gpus:
        limit = f"{g.power_limit_w or 'n/a'} ({g.default_power_limit_w or 'n/a'})"
        gpus.add_row(
            str(g.index),
            g.name,
            g.uuid,
            f"{g.memory_total_mib or 'n/a'}",
            limit,
            str(g.persistence_mode),
            str(g.mig_mode),
            str(g.ecc_enabled),
            f"{g.sm_clock_mhz or 'n/a'}",
            f"{g.temperature_c or 'n/a'}",
        )
    return gpus


def _cpu_table(report: DoctorReport) -> Table:
    cpu = Table(title="CPU", show_header=False, title_justify="left")
    cpu.add_column("what", style="bold")
    cpu.add_column("value")
    cpu.add_row("model", report.cpu_model or "unknown")
    cpu.add_row("CPUs visible", str(report.n_cpus_visible))
    cpu.add_row(
        "TDP for the estimate",
        f"{report.cpu_tdp.watts_per_thread:.2f} W per hardware thread ({report.cpu_tdp.source})",
    )
    zones = ", ".join(
        f"{z.zone_id}={z.domain or z.name}{'' if z.readable else ' (unreadable)'}"
        for z in report.rapl_zones
    )
    cpu.add_row("RAPL zones", escape(zones) or "none (no /sys/class/powercap)")
    return cpu


def _sampler_table(report: DoctorReport) -> Table:
    samplers = Table(title="energy samplers", title_justify="left")
    for column in ("sampler", "available", "accuracy", "why"):
        samplers.add_column(column)
    data = report.to_json()["energy_samplers"]
    for name, availability in report.samplers.items():
        samplers.add_row(
            name,
            _mark(availability.available),
            escape(data[name]["accuracy"] or ""),
            escape(availability.reason),
        )
    samplers.caption = escape(f"auto picks → {report.auto_choice}")
    return samplers


def _engine_table(report: DoctorReport) -> Table:
    engines = Table(title="engines", title_justify="left")
    for column in ("engine", "available", "version", "why"):
        engines.add_column(column)
    for name, availability in report.engines.items():
        engines.add_row(
            name,
            _mark(availability.available),
            availability.version or "",
            escape(availability.reason),
        )
    return engines
