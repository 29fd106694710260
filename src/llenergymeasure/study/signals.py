"""Ctrl-C and SIGTERM at any moment: steps that must not be cut in half hold them.

A study stops on Ctrl-C (SIGINT to the terminal's whole process group) or SIGTERM (a
batch scheduler, ``kill``). Most of the time the interrupt is welcome at once: the
parent kills the running child's process group and records the run interrupted. A few
steps must finish first, or the study would lose track of something:

- starting a child: interrupted half-way, the parent would not know the pid of a child
  the fork server is about to fork, and could not kill it;
- killing and reaping a child, and each rewrite of the manifest.

:func:`interrupts_held` holds SIGINT and SIGTERM for such a step and delivers them,
as they came, once it ends. :func:`sigint_blocked` keeps a terminal's Ctrl-C away from
helper processes started inside it (the fork server), which would otherwise die with a
``KeyboardInterrupt`` traceback of their own while importing torch.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["interrupts_held", "sigint_blocked"]

_HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver them to their handlers.

    Only the main thread can change signal handlers; elsewhere this holds nothing (a
    signal's Python handler runs in the main thread anyway). In nested blocks the
    outermost delivers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous = {sig: signal.getsignal(sig) for sig in _HELD}
    if any(handler is None for handler in previous.values()):
        yield  # a handler installed outside Python: leave it alone
        return
    for sig in _HELD:
        signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread; a process started inside inherits the block for life.

    Only this thread blocks it: a Ctrl-C meanwhile reaches this process through any
    other thread, or stays pending until the block ends, so it is never lost. (The
    standard library starts its resource tracker the same way.)
    """
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
