"""How a study tells the outside world what it is doing, without printing.

The CLI passes a reporter that draws a live table on stderr; the library default
reports nothing. Reporters only show: the study itself does the waiting. Both
executors send the same events: under ``ray`` the runs' events come from the workers.
"""

from __future__ import annotations

from typing import Protocol

from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.manifest import ManifestEntry

__all__ = ["NullStudyReporter", "StudyReporter"]


class StudyReporter(Protocol):
    """Receives study events, in the parent process (the driver, on a Ray cluster)."""

    def run_started(self, label: str, index: int, cycle: int) -> None:
        """An isolated run of config ``index`` (1-based) in ``cycle`` starts."""
        ...

    def progress(self, index: int, cycle: int, event: RunEvent) -> None:
        """The run of config ``index`` in ``cycle`` reports: a phase, progress, a wait."""
        ...

    def run_finished(self, entry: ManifestEntry) -> None:
        """A run ended; ``entry`` is its manifest entry (status, error, metrics)."""
        ...

    def waiting(self, seconds: float, reason: str) -> None:
        """The study is about to pause for ``seconds`` (thermal gap, circuit breaker)."""
        ...

    def note(self, message: str) -> None:
        """One line for the user: a folder adopted on resume, why the study stops early."""
        ...


class NullStudyReporter:
    """Reports nothing."""

    def run_started(self, label: str, index: int, cycle: int) -> None:
        return None

    def progress(self, index: int, cycle: int, event: RunEvent) -> None:
        return None

    def run_finished(self, entry: ManifestEntry) -> None:
        return None

    def waiting(self, seconds: float, reason: str) -> None:
        return None

    def note(self, message: str) -> None:
        return None
