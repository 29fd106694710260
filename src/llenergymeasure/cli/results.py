"""``llem results``: list, show, compare, export and report results already on disk."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llenergymeasure.cli.fit import Cell, add_rows, output_console, width_of
from llenergymeasure.cli.group import command_group
from llenergymeasure.cli.render import result_table, warnings_table
from llenergymeasure.cli.status import status_command
from llenergymeasure.cli.study_tables import summary_table
from llenergymeasure.config.loading import load_user_config
from llenergymeasure.errors import ConfigError
from llenergymeasure.records.environment import EnvironmentSnapshot
from llenergymeasure.records.files import read_json_model, safe_name
from llenergymeasure.report.html import write_report
from llenergymeasure.results.collection import (
    STUDY_RESULT_FILE,
    ResultSet,
    RunResult,
    discover,
    load_runs,
    open_results,
    tally_warnings,
)
from llenergymeasure.results.compare import HEADLINE_METRICS, compare
from llenergymeasure.results.export import ExportFormat, export_table, write_export, write_table
from llenergymeasure.results.listing import Listing, describe
from llenergymeasure.study.models import StudyResult

__all__ = ["results_app"]

results_app = command_group(
    "results", "List, show, compare, export and report results under results/."
)

_FORMATS: tuple[ExportFormat, ...] = ("csv", "parquet")


def _out() -> Console:
    return Console(highlight=False)


def _err() -> Console:
    # soft_wrap: one message stays one line in logs (paths must not be split).
    return Console(stderr=True, highlight=False, soft_wrap=True)


WideOpt = typer.Option(False, "--wide", help="names in full")


@results_app.command("list")
def list_command(
    folder: Path | None = typer.Argument(
        None, metavar="[DIR]", help="results folder (default: results/)", show_default=False
    ),
    wide: bool = WideOpt,
    as_json: bool = typer.Option(False, "--json", help="print the list as JSON"),
) -> None:
    """Every study and single run under results/ (or DIR), newest first."""
    root = folder or Path(load_user_config().results_dir or "results")
    listings = [describe(results) for results in discover(root)]
    if as_json:
        sys.stdout.write(json.dumps([_listing_json(i) for i in listings], indent=2) + "\n")
        return
    out = output_console(wide=wide)
    out.print(_list_table(root, listings, width_of(out, wide)))


def _list_table(root: Path, listings: Sequence[Listing], width: int | None) -> Table:
    """One row per set. To fit 80 columns, each cell takes two short lines; ``--wide``
    (``width`` None) gives date, models and engines columns of their own, on one line."""
    wide = width is None
    sep = ", " if wide else "\n"
    table = Table(title=f"results in {root}", title_justify="left")
    columns = (
        ("name", "date (UTC)", "models", "engines") if wide else ("name\ndate · models · engines",)
    )
    for column in (*columns, "what", "runs", "energy"):
        table.add_column(column)
    rows: list[list[Cell]] = []
    for item in listings:
        r = item.results
        date = r.created_at.strftime("%Y-%m-%d %H:%M") if r.created_at else "?"
        models, engines = ", ".join(item.models) or "—", ", ".join(item.engines) or "—"
        names = (
            [r.path.name, date, models, engines]
            if wide
            else [f"{r.path.name}\n{date} · {models} · {engines}"]
        )
        what = f"study{sep}{r.status}" if r.kind == "study" else "run"
        rows.append([*names, what, _runs_text(item, sep), _energy_text(item, sep)])
    add_rows(table, rows, label=0, width=width)
    if not listings:
        table.caption = "no study or run folder here"
    return table


def _runs_text(item: Listing, sep: str) -> str:
    r = item.results
    runs = f"{len(r.completed)}/{len(r.entries)} ok" if r.kind == "study" else "1 ok"
    if r.n_failed:
        runs += f"{sep}{r.n_failed} failed"
    if item.n_unreadable:
        runs += f"{sep}{item.n_unreadable} unreadable"
    return runs


def _energy_text(item: Listing, sep: str) -> str:
    if item.total_energy_j is None:
        return "n/a"
    energy = _joules(item.total_energy_j)
    if item.n_energy_unknown:
        energy += f"{sep}({item.n_energy_unknown} runs n/a)"
    return energy


def _listing_json(item: Listing) -> dict[str, object]:
    r = item.results
    return {
        "name": r.path.name,
        "path": str(r.path),
        "kind": r.kind,
        "status": r.status,
        "created_at": r.created_at.isoformat() if r.created_at else None,
        "models": list(item.models),
        "engines": list(item.engines),
        "n_runs": len(r.entries),
        "n_completed": len(r.completed),
        "n_failed": r.n_failed,
        "n_unreadable": item.n_unreadable,
        "total_energy_j": item.total_energy_j,
        "n_energy_unknown": item.n_energy_unknown,
    }


@results_app.command("show")
def show_command(
    path: Path = typer.Argument(..., help="a study folder, a run folder or a result.json"),
    wide: bool = WideOpt,
) -> None:
    """One run or one study: the tables the run printed, its warnings and environment."""
    results = open_results(path)
    out = output_console(wide=wide)
    width = width_of(out, wide)
    runs = load_runs(results)
    if results.kind == "run":
        for run in runs:
            out.print(result_table(run.result))
            warnings = warnings_table(run.result)
            if warnings is not None:
                out.print(warnings)
    else:
        study = _study_result(results)
        if study is not None:
            out.print(summary_table(study, width=width))
        else:
            out.print(
                f"study {escape(results.name)}: {results.status} (no {STUDY_RESULT_FILE} yet)"
            )
        if results.stop_reason:
            out.print(f"stopped early: {escape(results.stop_reason)}")
        out.print(_runs_table(results, runs, width))
        warnings = _study_warnings(runs)
        if warnings is not None:
            out.print(warnings)
    if runs:
        out.print(_environment_table(runs))


results_app.command("status")(status_command)


@results_app.command("compare")
def compare_command(
    paths: list[Path] = typer.Argument(..., help="two or more run or study folders"),
    force: bool = typer.Option(
        False,
        "--force",
        help="compare even across methodology versions, devices, GPU models, GPU power "
        "limits or energy methods",
    ),
) -> None:
    """Headline metrics side by side, with each column's ratio to the first."""
    comparison = compare(paths, force=force)
    err = _err()
    for mismatch in comparison.mismatches:
        err.print(
            f"[bold red]warning: NOT COMPARABLE, shown because of --force:[/] {escape(mismatch)}"
        )
    base = comparison.columns[0].name
    table = Table(
        title=f"compared with {base} (ratio = column / first column)", title_justify="left"
    )
    table.add_column("metric")
    for column in comparison.columns:
        table.add_column(f"{escape(column.name)}\n(n={column.n_runs})", justify="right")
    for metric in HEADLINE_METRICS:
        cells = []
        for column, ratios in zip(comparison.columns, comparison.ratios, strict=True):
            value = column.values[metric.key]
            text = "n/a" if value is None else f"{value:,.4g} {metric.unit}"
            ratio = ratios[metric.key]
            if column is not comparison.columns[0] and ratio is not None:
                text += f" (×{ratio:.3g})"
            cells.append(text)
        arrow = "↓" if metric.better == "lower" else "↑"
        table.add_row(f"{arrow} {metric.name}", *cells)
    table.caption = (
        "↓ lower is better, ↑ higher is better; values are means over each column's runs"
    )
    _out().print(table)


@results_app.command("export")
def export_command(
    path: Path = typer.Argument(..., help="a study folder, a run folder or a result.json"),
    fmt: str | None = typer.Option(
        None, "--format", "-f", help="csv or parquet (default: from -o's suffix, else csv)"
    ),
    output: str | None = typer.Option(
        None, "--output", "-o", help="file to write (default: <name>.<format> in PATH); - = stdout"
    ),
) -> None:
    """One flat row per completed run: config as dotted columns, metrics, energy per domain."""
    chosen = _format(fmt, output)
    results = open_results(path)
    err = _err()
    if output == "-":
        if chosen != "csv":
            raise ConfigError("only CSV can be written to stdout", hint="give -o FILE.parquet")
        table = export_table(results)
        write_table(table, sys.stdout.buffer, "csv")
        sys.stdout.buffer.flush()
        err.print(f"{table.num_rows} runs exported")
        return
    target = Path(output) if output else results.path / f"{safe_name(results.name)}.{chosen}"
    n = write_export(results.path, target, chosen)
    err.print(f"{n} runs exported to {target}")


@results_app.command("report")
def report_command(
    path: Path = typer.Argument(..., help="a study folder, a run folder or a result.json"),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="HTML file to write (default: report.html in PATH)"
    ),
) -> None:
    """A self-contained HTML report with plots: open it in any browser, offline."""
    target = write_report(path, output)
    _err().print(f"report written to {target}")


def _format(fmt: str | None, output: str | None) -> ExportFormat:
    if fmt is None:
        suffix = Path(output).suffix.lstrip(".").lower() if output and output != "-" else ""
        return "parquet" if suffix == "parquet" else "csv"
    for known in _FORMATS:
        if fmt.lower() == known:
            return known
    raise ConfigError(f"unknown export format {fmt!r}", hint="use --format csv or --format parquet")


def _joules(value: float) -> str:
    if abs(value) >= 3.6e5:
        return f"{value / 3.6e6:,.3f} kWh"
    return f"{value:,.1f} J"


def _study_result(results: ResultSet) -> StudyResult | None:
    return read_json_model(StudyResult, results.path / STUDY_RESULT_FILE, "study result")


def _runs_table(results: ResultSet, runs: Sequence[RunResult], width: int | None) -> Table:
    by_key = {(r.entry.index, r.entry.cycle): r.result for r in runs}
    table = Table(title="runs", title_justify="left")
    for column in ("run", "config", "status", "window s", "tok/s", "J/token", "energy J", "error"):
        table.add_column(column)
    rows: list[list[Cell]] = []
    for entry in sorted(results.entries, key=lambda e: (e.index, e.cycle)):
        result = by_key.get((entry.index, entry.cycle))
        rows.append(
            [
                entry.key,
                entry.label,
                entry.status,
                f"{result.window.duration_s:.2f}" if result else "",
                f"{result.throughput.output_tokens_per_s:,.2f}" if result else "",
                _maybe(result.energy.j_per_output_token if result else None, ".4f"),
                _maybe(result.energy.total_j if result else None, ",.2f"),
                entry.error or "",
            ]
        )
    add_rows(table, rows, label=1, width=width)
    return table


def _maybe(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _study_warnings(runs: Sequence[RunResult]) -> Table | None:
    tallies = tally_warnings(runs)
    if not tallies:
        return None
    table = Table(title="warnings", title_justify="left")
    for column in ("code", "runs", "what (first run)", "remedy"):
        table.add_column(column)
    for t in tallies:
        table.add_row(t.code, f"{t.n_runs}/{len(runs)}", escape(t.message), escape(t.remedy))
    return table


def _environment_table(runs: Sequence[RunResult]) -> Table:
    env: EnvironmentSnapshot = runs[0].result.environment
    hosts = sorted({r.result.environment.hostname for r in runs})
    table = Table(title="environment", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    gpus = "; ".join(str(a.get("name", "?")) for a in env.accelerators) or "none"
    packages = ", ".join(f"{k} {v}" for k, v in env.packages.items() if v)
    for name, value in (
        ("host", env.hostname + (f" (runs span {len(hosts)} hosts)" if len(hosts) > 1 else "")),
        ("OS", f"{env.os}, kernel {env.kernel}"),
        ("CPU", f"{env.cpu_model or 'unknown'} ({env.n_cpus_logical} logical CPUs)"),
        ("accelerators", gpus),
        ("CUDA / driver", f"{env.cuda_version or 'n/a'} / {env.driver_version or 'n/a'}"),
        ("container", env.container or "none detected"),
        ("Python", env.python),
        ("packages", packages or "n/a"),
    ):
        table.add_row(name, escape(value))
    return table
