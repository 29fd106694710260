"""How an experiment tells the outside world what it is doing, without printing.

The spine wraps each step in ``reporter.step(...)``; the CLI passes a reporter that
draws progress on stderr, the library default reports nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

from llenergymeasure.energy.running_energy import EnergySoFar

__all__ = ["NullReporter", "Reporter", "WindowSoFar"]


@dataclass(frozen=True)
class WindowSoFar:
    """What the measured window has done by the end of a batch: the output tokens generated
    (None where the engine does not count them) and the traced devices' energy since the
    window began (None where no traced device reports energy: never 0)."""

    n_output_tokens: int | None = None
    energy: EnergySoFar | None = None


class Reporter(Protocol):
    """Receives progress events. Implementations must be cheap: ``advance`` runs in the window."""

    def step(self, name: str) -> AbstractContextManager[None]:
        """Context manager around one step of the experiment."""
        ...

    def info(self, message: str) -> None:
        """A one-line note for the user."""
        ...

    def start_progress(self, total: int, description: str) -> None:
        """A countable piece of work begins (e.g. requests in the window)."""
        ...

    def advance(self, done: int, so_far: WindowSoFar | None = None) -> None:
        """``done`` units of the current progress are complete; in the measured window,
        what it has done so far."""
        ...

    def wait(self, seconds: float, reason: str) -> None:
        """Sleep for ``seconds`` (e.g. a thermal floor), showing a countdown if it can."""
        ...


class NullReporter:
    """Reports nothing; waits still wait."""

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        yield

    def info(self, message: str) -> None:
        return None

    def start_progress(self, total: int, description: str) -> None:
        return None

    def advance(self, done: int, so_far: WindowSoFar | None = None) -> None:
        return None

    def wait(self, seconds: float, reason: str) -> None:
        time.sleep(seconds)
