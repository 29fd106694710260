"""``llem results status DIR`` (also ``llem status DIR``): where a study stands.

Works while the study runs (from another terminal) and after it stopped: done, running
with phase and elapsed time, pending, failed with reasons, and the ETA from the
durations so far.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table

from llenergymeasure.cli.fit import Cell, add_rows, output_console, width_of
from llenergymeasure.cli.live import so_far_text
from llenergymeasure.errors import ResultError, StudyError
from llenergymeasure.results.collection import MANIFEST_FILE
from llenergymeasure.study.control import format_s
from llenergymeasure.study.status import RunningRun, StudyStatusReport, study_status

__all__ = ["status_command", "status_view"]

_MAX_PENDING_SHOWN = 10


def status_command(
    path: Path = typer.Argument(..., metavar="DIR", help="a study folder"),
    wide: bool = typer.Option(False, "--wide", help="names in full"),
    as_json: bool = typer.Option(False, "--json", help="print the status as JSON"),
) -> None:
    """Done, running (phase, elapsed), pending, failed with reasons, and the ETA of a study."""
    folder = path.parent if path.name == MANIFEST_FILE else path
    if not (folder / MANIFEST_FILE).is_file():
        raise ResultError(
            f"{folder} is not a study folder (no {MANIFEST_FILE})",
            hint="`llem results list` shows the study folders",
        )
    try:
        report = study_status(folder)
    except StudyError as err:
        raise ResultError(err.message, hint=err.hint) from err
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2, default=str) + "\n")
        return
    out = output_console(wide=wide)
    out.print(status_view(report, width=width_of(out, wide)))


def status_view(report: StudyStatusReport, *, width: int | None) -> RenderableType:
    """The headline, then the runs in flight and the runs that did not complete."""
    parts: list[RenderableType] = [escape(_headline(report))]
    if report.running:
        parts.append(_running_table(report.running, width))
    if report.unfinished:
        parts.append(_unfinished_table(report, width))
    if report.pending:
        shown = ", ".join(f"{i}/c{c}" for i, c, _ in report.pending[:_MAX_PENDING_SHOWN])
        more = len(report.pending) - _MAX_PENDING_SHOWN
        parts.append(escape(f"pending: {shown}" + (f" and {more} more" if more > 0 else "")))
    return Group(*parts)


def _headline(r: StudyStatusReport) -> str:
    n_failed = sum(run.status != "interrupted" for run in r.unfinished)
    n_interrupted = len(r.unfinished) - n_failed
    lines = [
        f"study {r.name}: {_state(r)}",
        f"{r.n_completed} of {r.n_planned} runs completed, {len(r.running)} running, "
        f"{r.n_pending} pending, {n_failed} failed, {n_interrupted} interrupted",
    ]
    if r.state == "running" and r.process:
        age = f"; last news {format_s(r.news_age_s)} ago" if r.news_age_s is not None else ""
        lines.insert(1, f"run by {r.process}{age}")
    if r.energy_so_far_j is not None:
        of = "" if r.n_energy_runs == r.n_completed else f" of {r.n_completed}"
        lines.append(
            f"energy measured so far: {r.energy_so_far_j:,.1f} J "
            f"(window energy of {r.n_energy_runs}{of} completed runs)"
        )
    if r.estimated_so_far_j is not None:
        lines.append(
            f"energy estimated so far: {r.estimated_so_far_j:,.1f} J "
            f"({r.n_estimated_runs} completed runs with no measured energy; not added above)"
        )
    if r.n_completed == r.n_planned:
        pass  # nothing left: no ETA
    elif r.eta_s is not None:
        finish = "to finish" if r.state == "running" else "to finish with --resume"
        lines.append(f"ETA {finish}: about {format_s(r.eta_s)} (from the durations so far)")
    else:
        lines.append("ETA: unknown until a run has completed")
    if r.waiting is not None:
        lines.append(f"waiting: {r.waiting[0]}, {format_s(r.waiting[1])} left")
    if r.budget_left_s is not None:
        lines.append(f"time budget: {format_s(r.budget_left_s)} left")
    if r.stop_reason and r.state != "running":
        lines.append(f"stopped early: {r.stop_reason}")
    return "\n".join(lines)


def _state(r: StudyStatusReport) -> str:
    if r.state == "running":
        return "running"
    if r.state == "died":
        return (
            f"not running: its process ({r.process}) stopped without closing the study "
            f"(killed?); status {r.status}; --resume continues it"
        )
    return f"not running; status {r.status}"


def _running_table(running: tuple[RunningRun, ...], width: int | None) -> Table:
    table = Table(title="running", title_justify="left")
    for column in ("run", "config", "phase", "elapsed"):
        table.add_column(column)
    rows: list[list[Cell]] = [
        [f"{r.index}/c{r.cycle}", r.label, _phase(r), format_s(r.elapsed_s or 0.0)] for r in running
    ]
    add_rows(table, rows, label=1, width=width)
    return table


def _phase(r: RunningRun) -> str:
    if r.phase is None:
        return "unknown (no live status yet)"
    text = r.phase + (f" for {format_s(r.phase_s)}" if r.phase_s is not None else "")
    if r.wait_reason and r.wait_left_s is not None:
        text += f"\n{r.wait_reason}: {format_s(r.wait_left_s)} left"
    elif r.total:
        text += f"\n{r.done or 0} of {r.total} done"
        so_far = so_far_text(r.n_output_tokens, r.energy_j, r.energy_method)
        text += f"\n{so_far}" if so_far else ""
    return text + (f"\n⚠ {r.alert}" if r.alert else "")


def _unfinished_table(report: StudyStatusReport, width: int | None) -> Table:
    table = Table(title="not completed", title_justify="left")
    for column in ("run", "config", "status", "attempts", "reason"):
        table.add_column(column)
    rows: list[list[Cell]] = [
        [f"{r.index}/c{r.cycle}", r.label, r.status, str(r.n_attempts), r.error or ""]
        for r in report.unfinished
    ]
    add_rows(table, rows, label=1, width=width)
    return table
