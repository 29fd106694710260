"""SIGTERM stops a command as Ctrl-C does: a batch scheduler's stop is not a crash."""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import ParamSpec, TypeVar

__all__ = ["sigterm_stops_the_run"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def sigterm_stops_the_run(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """While ``command`` runs, SIGTERM stops it like Ctrl-C (DESIGN §6).

    A batch scheduler, ``kill`` or a container stop sends SIGTERM; without this the
    process would die at once, leaving the running child and a `running` manifest entry.
    As KeyboardInterrupt it takes the Ctrl-C path: the child's process group is killed,
    its entry marked interrupted, and the exit code is 130.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    @functools.wraps(command)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if threading.current_thread() is not threading.main_thread():
            return command(*args, **kwargs)  # only the main thread may set signal handlers
        previous = signal.signal(signal.SIGTERM, interrupt)
        try:
            return command(*args, **kwargs)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper
