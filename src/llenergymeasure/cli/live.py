"""The live table of a running study on stderr, and the gaps Enter can cut short.

One row per run: its phase, progress and countdowns as the run reports them (through
its worker, on a Ray cluster), an alert when a worker goes quiet, the figures once it
ends. Below: the study's own countdown (a thermal gap, the circuit breaker's pause),
how many runs are done, and the energy measured so far. Not on a terminal (a log
file), the same events are printed as lines.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from llenergymeasure.cli.fit import Cell, add_rows
from llenergymeasure.config.study import StudyPlan
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.manifest import ManifestEntry

__all__ = ["RichStudyReporter", "SkippableSleep", "so_far_text"]


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


@dataclass
class _Row:
    label: str
    started: float
    status: str = "running"
    phase: str = "starting"
    what: str | None = None
    done: int | None = None
    total: int | None = None
    n_output_tokens: int | None = None
    energy: tuple[float, str | None] | None = None  # (joules so far, method)
    wait: tuple[float, str] | None = None  # (monotonic end, reason)
    alert: str | None = None
    elapsed_s: float | None = None
    tok_s: float | None = None
    j_tok: float | None = None
    energy_j: float | None = None
    energy_kind: str = "measured"  # or "estimated": the two are never summed
    error: str | None = None

    def state(self) -> str:
        """What the status column says."""
        if self.status != "running":
            return self.status + (f": {self.error}" if self.error else "")
        text = f"running · {self.phase}"
        if self.wait is not None and self.wait[0] > time.monotonic():
            text += f" · {self.wait[1]} {self.wait[0] - time.monotonic():.0f} s left"
        elif self.total:
            text += f" {self.done or 0}/{self.total}"
            so_far = so_far_text(self.n_output_tokens, *(self.energy or (None, None)))
            text += f"\n{so_far}" if so_far else ""
        return text + (f"\n⚠ {self.alert}" if self.alert else "")


class RichStudyReporter:
    """A live table on stderr: one row per run, and a countdown during gaps."""

    def __init__(self, console: Console, plan: StudyPlan, *, width: int | None = 0) -> None:
        self._plan = plan
        self._n_runs = len(plan.runs())
        self._rows: dict[tuple[int, int], _Row] = {}
        self._wait: tuple[float, str] | None = None
        self._note: str | None = None
        self._live = Live(self, console=console, refresh_per_second=4, transient=False)
        self._console = console
        self._width = width  # 0: the console's width; None: names whole (--wide)

    def __enter__(self) -> RichStudyReporter:
        if self._console.is_terminal:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._console.is_terminal:
            self._live.stop()

    def run_started(self, label: str, index: int, cycle: int) -> None:
        self._wait = None
        self._rows[(index, cycle)] = _Row(label, time.monotonic())
        self._line(f"run {index}/c{cycle} {label}: started")

    def progress(self, index: int, cycle: int, event: RunEvent) -> None:
        row = self._rows.get((index, cycle))
        if row is None:
            return
        if event.kind == "alert":
            row.alert = event.text
            self._line(f"run {index}/c{cycle}: {event.text}")
            return
        row.alert = None
        if event.kind == "phase":
            row.phase, row.what, row.done, row.total, row.wait = event.text, None, None, None, None
            row.n_output_tokens, row.energy = None, None
            self._line(f"run {index}/c{cycle}: {event.text}")
        elif event.kind == "progress":
            row.what, row.done, row.total = event.text, event.done, event.total
            if event.n_output_tokens is not None:
                row.n_output_tokens = event.n_output_tokens
            if event.energy_j is not None:
                row.energy = (event.energy_j, event.energy_method)
        elif event.kind == "wait" and event.seconds is not None:
            row.wait = (time.monotonic() + event.seconds, event.text)
            self._line(f"run {index}/c{cycle}: {event.text}: {event.seconds:.0f} s")

    def run_finished(self, entry: ManifestEntry) -> None:
        row = self._rows.setdefault((entry.index, entry.cycle), _Row(entry.label, time.monotonic()))
        metrics = entry.metrics
        row.status, row.error, row.alert, row.elapsed_s = (
            entry.status,
            entry.error,
            None,
            entry.duration_s,
        )
        if metrics is not None:
            row.tok_s, row.j_tok, row.energy_j = (
                metrics.output_tokens_per_s,
                metrics.j_per_output_token,
                metrics.energy_j,
            )
            row.energy_kind = "estimated" if metrics.energy_method == "estimated" else "measured"
        error = f" ({entry.error})" if entry.error else ""
        self._line(f"run {entry.index}/c{entry.cycle} {entry.label}: {entry.status}{error}")

    def waiting(self, seconds: float, reason: str) -> None:
        self._wait = (time.monotonic() + seconds, reason)
        self._line(f"{reason}: {seconds:.0f} s")

    def note(self, message: str) -> None:
        self._note = message
        self._line(message)

    def _line(self, text: str) -> None:
        if not self._console.is_terminal:
            self._console.print(text, highlight=False, markup=False)

    def __rich__(self) -> RenderableType:
        table = Table(title=f"study {self._plan.name}", title_justify="left")
        for column in ("run", "config", "status", "elapsed s", "tok/s", "J/token"):
            table.add_column(column)
        rows: list[list[Cell]] = []
        for (index, cycle), row in sorted(self._rows.items(), key=lambda kv: kv[1].started):
            elapsed = row.elapsed_s
            if row.status == "running":
                elapsed = time.monotonic() - row.started
            rows.append(
                [
                    f"{index}/c{cycle}",
                    row.label,
                    row.state(),
                    _fmt(elapsed, ".1f"),
                    _fmt(row.tok_s, ".2f"),
                    _fmt(row.j_tok, ".4f"),
                ]
            )
        width = self._console.width if self._width == 0 else self._width
        add_rows(table, rows, label=1, width=width)
        table.caption = escape(self._caption())
        return table

    def _caption(self) -> str:
        done = [r for r in self._rows.values() if r.status == "completed"]
        lines = [f"{len(done)} of {self._n_runs} runs completed"]
        for kind in ("measured", "estimated"):  # never summed together
            figures = [r.energy_j for r in done if r.energy_j is not None and r.energy_kind == kind]
            if figures:
                lines[0] += f"; energy {kind} so far {sum(figures):,.1f} J ({len(figures)} runs)"
        if self._wait is not None and self._wait[0] > time.monotonic():
            left = self._wait[0] - time.monotonic()
            lines.append(f"{self._wait[1]}: {left:.0f} s left (Enter skips)")
        if self._note:
            lines.append(self._note)
        return "\n".join(lines)


def so_far_text(
    n_output_tokens: int | None, energy_j: float | None, energy_method: str | None
) -> str:
    """``1,204 tokens · 85.3 J so far (counter)``; the parts not known are left out."""
    parts = []
    if n_output_tokens is not None:
        parts.append(f"{n_output_tokens:,} tokens")
    if energy_j is not None:
        parts.append(f"{energy_j:,.1f} J so far ({energy_method or 'unlabelled'})")
    return " · ".join(parts)


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)
