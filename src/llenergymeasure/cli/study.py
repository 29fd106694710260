"""``llem run study.yaml``: the plan, a live table while it runs, a summary at the end."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from llenergymeasure.config.study import StudyPlan
from llenergymeasure.errors import StudyError
from llenergymeasure.study.estimate import DurationEstimate
from llenergymeasure.study.manifest import MANIFEST_FILE, ManifestEntry
from llenergymeasure.study.models import Aggregate, StudyResult
from llenergymeasure.study.parity import StudyParity

__all__ = [
    "RichStudyReporter",
    "SkippableSleep",
    "find_resume_dir",
    "parity_table",
    "plan_table",
    "summary_table",
]


# A terminal table of thousands of rows is unreadable and slow to draw.
MAX_PLAN_ROWS = 50


def plan_table(plan: StudyPlan, estimate: DurationEstimate) -> Table:
    """Each unique config, the run count and order, skips, and the estimated duration."""
    runs = plan.runs()
    table = Table(
        title=(
            f"study {plan.name}: {len(plan.configs)} configs × {plan.execution.n_cycles} cycles "
            f"= {len(runs)} runs, order {plan.execution.experiment_order} (nothing has run)"
        ),
        title_justify="left",
    )
    table.add_column("#", justify="right")
    table.add_column("config")
    table.add_column("hash")
    table.add_column("prompts × max tokens")
    shown = list(zip(plan.configs, plan.labels, strict=True))[:MAX_PLAN_ROWS]
    for i, (config, label) in enumerate(shown, 1):
        task = config.task
        table.add_row(
            str(i),
            escape(label),
            plan.config_hashes[i - 1][:8],
            f"{task.dataset.n_prompts} × {task.max_output_tokens}",
        )
    if len(plan.configs) > MAX_PLAN_ROWS:
        table.add_row("…", f"and {len(plan.configs) - MAX_PLAN_ROWS:,} more configs", "", "")
    order = ", ".join(f"{r.config_index + 1}/c{r.cycle}" for r in runs[:24])
    table.caption = escape(
        f"run order: {order}{' …' if len(runs) > 24 else ''}\n"
        f"design hash {plan.design_hash}\n{_estimate_text(estimate)}{_executor_text(plan)}"
    )
    for skipped in plan.skipped:
        table.add_row("-", escape(f"skipped: {skipped.label}"), "", escape(skipped.reason))
    return table


def _executor_text(plan: StudyPlan) -> str:
    execution = plan.execution
    if execution.executor != "ray":
        return ""
    where = execution.address or "a Ray started here"
    return (
        f"\nexecutor ray ({where}): runs go one per GPU side by side, so the study takes "
        "about the estimate divided by the GPUs free"
    )


def _estimate_text(e: DurationEstimate) -> str:
    parts = [f"{e.gaps_s:,.0f} s of thermal gaps"]
    if e.n_timed_runs:
        parts.append(f"{e.timed_s:,.0f} s for {e.n_timed_runs} runs timed from earlier results")
    if e.n_untimed_runs:
        fixed = f" ({e.fixed_s:,.0f} s of baselines and thermal floors known)" if e.fixed_s else ""
        parts.append(f"{e.n_untimed_runs} runs never timed{fixed}")
    bound = "at least " if e.n_untimed_runs else "about "
    return f"estimated duration: {bound}{e.total_s:,.0f} s = " + " + ".join(parts)


def find_resume_dir(results_root: Path, name: str) -> Path:
    """The newest study folder of this study name under ``results_root``."""
    candidates = sorted(
        (p for p in results_root.glob(f"{name}_*") if (p / MANIFEST_FILE).is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    if not candidates:
        raise StudyError(
            f"no earlier study `{name}` to resume under {results_root}",
            hint="give the study folder: --resume DIR",
        )
    return candidates[-1]


class SkippableSleep:
    """Waits for a gap; in a terminal, Enter ends the wait early."""

    def __init__(self) -> None:
        self._enter = threading.Event()
        if sys.stdin is not None and sys.stdin.isatty():
            threading.Thread(target=self._read_lines, daemon=True, name="llem-enter").start()

    def _read_lines(self) -> None:
        for _ in sys.stdin:
            self._enter.set()

    def __call__(self, seconds: float) -> None:
        self._enter.clear()
        self._enter.wait(seconds)


class RichStudyReporter:
    """A live table on stderr: one row per run, and a countdown during gaps."""

    def __init__(self, console: Console, plan: StudyPlan) -> None:
        self._plan = plan
        self._rows: dict[tuple[int, int], dict[str, Any]] = {}
        self._started: dict[tuple[int, int], float] = {}
        self._step = ""
        self._wait: tuple[float, str] | None = None
        self._live = Live(self, console=console, refresh_per_second=4, transient=False)
        self._console = console

    def __enter__(self) -> RichStudyReporter:
        if self._console.is_terminal:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._console.is_terminal:
            self._live.stop()

    def run_started(self, label: str, index: int, cycle: int) -> None:
        self._wait = None
        self._started[(index, cycle)] = time.monotonic()
        self._rows[(index, cycle)] = {"label": label, "status": "running"}
        if not self._console.is_terminal:
            self._console.print(f"run {index}/c{cycle} {label}: started", highlight=False)

    def progress(self, step: str) -> None:
        self._step = step

    def run_finished(self, entry: ManifestEntry) -> None:
        key = (entry.index, entry.cycle)
        metrics = entry.metrics
        self._rows[key] = {
            "label": entry.label,
            "status": entry.status,
            "elapsed": entry.duration_s,
            "tok_s": metrics.output_tokens_per_s if metrics else None,
            "j_tok": metrics.j_per_output_token if metrics else None,
            "error": entry.error,
        }
        if not self._console.is_terminal:
            self._console.print(
                f"run {entry.index}/c{entry.cycle} {entry.label}: {entry.status}"
                + (f" ({entry.error})" if entry.error else ""),
                highlight=False,
                markup=False,
            )

    def waiting(self, seconds: float, reason: str) -> None:
        self._wait = (time.monotonic() + seconds, reason)
        if not self._console.is_terminal:
            self._console.print(f"{reason}: {seconds:.0f} s", highlight=False)

    def __rich__(self) -> RenderableType:
        table = Table(title=f"study {self._plan.name}", title_justify="left")
        for column in ("run", "config", "status", "elapsed s", "tok/s", "J/token"):
            table.add_column(column)
        for (index, cycle), row in sorted(self._rows.items(), key=lambda kv: self._started[kv[0]]):
            elapsed = row.get("elapsed")
            if row["status"] == "running":
                elapsed = time.monotonic() - self._started[(index, cycle)]
            status = row["status"] + (f" · {self._step}" if row["status"] == "running" else "")
            table.add_row(
                f"{index}/c{cycle}",
                escape(row["label"]),
                escape(status),
                _fmt(elapsed, ".1f"),
                _fmt(row.get("tok_s"), ".2f"),
                _fmt(row.get("j_tok"), ".4f"),
            )
        if self._wait is not None:
            left = self._wait[0] - time.monotonic()
            if left > 0:
                table.caption = escape(f"{self._wait[1]}: {left:.0f} s left (Enter skips)")
        return table


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def summary_table(result: StudyResult) -> RenderableType:
    """Per unique config across cycles: mean, std and 95 % CI of J/token and tokens/s;
    then the engine parity, when the study compared engines."""
    s = result.summary
    table = Table(
        title=(
            f"study {result.name}: {result.status} — {s.n_completed}/{s.n_planned} runs completed, "
            f"{s.n_failed} failed, {s.n_interrupted} interrupted, {s.n_skipped} not run"
        ),
        title_justify="left",
    )
    serving = any(a.j_per_request or a.goodput_per_s for a in result.aggregates)
    for column in (
        "#",
        "config",
        "n",
        "J/output token (mean ± 95% CI, std)",
        "output tokens/s (mean ± 95% CI, std)",
        *(("J/request (serving)", "goodput req/s (serving)") if serving else ()),
    ):
        table.add_column(column)
    for agg in result.aggregates:
        extra = [_optional(agg.j_per_request, ".4f"), _optional(agg.goodput_per_s, ".3f")]
        table.add_row(
            str(agg.index),
            escape(agg.label),
            str(agg.n_completed),
            _aggregate(agg.j_per_output_token, ".4f"),
            _aggregate(agg.output_tokens_per_s, ".2f"),
            *(extra if serving else []),
        )
    energy = "n/a" if s.total_energy_j is None else f"{s.total_energy_j:,.1f} J"
    table.caption = f"wall time {s.wall_time_s:,.1f} s; total energy {energy}"
    if result.parity is None:
        return table
    return Group(table, parity_table(result.parity), *_parity_alarms(result.parity))


def _optional(agg: Aggregate | None, spec: str) -> str:
    return "n/a" if agg is None else _aggregate(agg, spec)


def parity_table(parity: StudyParity) -> Table:
    """One row per pair of engines compared: what differs and how often outputs agree."""
    table = Table(title="engine parity", title_justify="left")
    for column in (
        "configs",
        "settings that differ",
        "first k tokens same",
        "outputs same",
        "like for like",
    ):
        table.add_column(column)
    for group in parity.groups:
        engines = {m.index: m.engine for m in group.members}
        for c in group.comparisons:
            agreement = c.agreement
            if agreement.comparable:
                first = f"{agreement.first_k_identical:.0%} (k={agreement.k})"
                full = f"{agreement.fully_identical:.0%} of {agreement.n_requests}"
            else:
                first, full = escape(agreement.note), ""
            table.add_row(
                f"#{c.a} {engines[c.a]} vs #{c.b} {engines[c.b]}",
                escape(", ".join(c.differing) or "none"),
                first,
                full,
                "[green]yes[/]" if c.like_for_like else "[bold red]NO[/]",
            )
    return table


def _parity_alarms(parity: StudyParity) -> list[str]:
    lines = []
    for group in parity.groups:
        engines = {m.index: m.engine for m in group.members}
        for c in group.comparisons:
            if not c.like_for_like:
                lines.append(
                    f"[bold red]NOT LIKE FOR LIKE: #{c.a} {engines[c.a]} vs #{c.b} "
                    f"{engines[c.b]}[/]: " + escape("; ".join(c.reasons))
                )
    lines.extend(f"[yellow]parity:[/] {escape(note)}" for note in parity.notes)
    return lines


def _aggregate(agg: Any, spec: str) -> str:
    if agg.mean is None:
        return "n/a"
    text = format(agg.mean, spec)
    if agg.ci95_half_width is not None:
        text += f" ± {format(agg.ci95_half_width, spec)}"
    if agg.std is not None:
        text += f" (std {format(agg.std, spec)})"
    return text
