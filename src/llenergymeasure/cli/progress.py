"""A Reporter that draws progress on stderr with rich."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from llenergymeasure.experiment.reporter import WindowSoFar

__all__ = ["RichReporter"]


class RichReporter:
    """A spinner per step, a bar for countable work, one finished line per step.

    Rich allows one live display at a time, so the step spinner and the bars
    share a single Progress.
    """

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._live: Progress | None = None
        self._task: TaskID | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        self._show(f"{name}…", total=None)
        try:
            yield
        finally:
            self._hide()
        self._console.print(f"[green]✓[/] {name} [dim]({time.perf_counter() - started:.1f} s)[/]")

    def info(self, message: str) -> None:
        self._console.print(message, highlight=False)

    def start_progress(self, total: int, description: str) -> None:
        self._show(description, total=total)

    def advance(self, done: int, so_far: WindowSoFar | None = None) -> None:
        if self._live is not None and self._task is not None:
            self._live.update(self._task, completed=done)

    def wait(self, seconds: float, reason: str) -> None:
        end = time.monotonic() + seconds
        self._show(reason, total=seconds)
        while (left := end - time.monotonic()) > 0:
            self.advance(int(seconds - left))
            time.sleep(min(1.0, left))

    def _show(self, description: str, *, total: float | None) -> None:
        self._hide()
        if not self._console.is_terminal:
            return  # live displays only make sense on a terminal; logs get the step lines
        self._live = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
        )
        self._live.start()
        self._task = self._live.add_task(description, total=total)

    def _hide(self) -> None:
        if self._live is not None:
            self._live.stop()
        self._live, self._task = None, None
