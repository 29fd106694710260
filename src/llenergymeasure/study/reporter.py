"""How a study tells the outside world what it is doing, without printing.

The CLI passes a reporter that draws a live table on stderr; the library default
reports nothing. Reporters only show: the study itself does the waiting.
"""

from __future__ import annotations

from typing import Protocol

from llenergymeasure.study.manifest import ManifestEntry

__all__ = ["NullStudyReporter", "StudyReporter"]


class StudyReporter(Protocol):
    """Receives study events, in the parent process."""

    def run_started(self, label: str, index: int, cycle: int) -> None:
        """An isolated run of config ``index`` (1-based) in ``cycle`` starts."""
        ...

    def progress(self, step: str) -> None:
        """The running experiment entered a step (``loading model``, ``measuring``, ...)."""
        ...

    def run_finished(self, entry: ManifestEntry) -> None:
        """A run ended; ``entry`` is its manifest entry (status, error, metrics)."""
        ...

    def waiting(self, seconds: float, reason: str) -> None:
        """The study is about to pause for ``seconds`` (thermal gap, circuit breaker)."""
        ...


class NullStudyReporter:
    """Reports nothing."""

    def run_started(self, label: str, index: int, cycle: int) -> None:
        return None

    def progress(self, step: str) -> None:
        return None

    def run_finished(self, entry: ManifestEntry) -> None:
        return None

    def waiting(self, seconds: float, reason: str) -> None:
        return None
