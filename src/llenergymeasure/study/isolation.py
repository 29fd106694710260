"""One experiment in a fresh subprocess, with a typed outcome (DESIGN.md §6).

The child runs the experiment, writes its result folder itself (large results never
cross the pipe) and sends back one small message: completed (folder + headline
metrics) or failed (exception type + message; the traceback goes to
``<study_dir>/logs/<NNN>_c<cycle>.log``). While it runs it sends events (phases,
progress, waits: ``study.events``). The child leads its own process group, so a
timeout, the silence watchdog or an interrupt kills everything it started. How a run
ended is one of :data:`~llenergymeasure.study.outcome.OutcomeStatus`.

A child is forked from a fork server of this interpreter when the engine's library is
importable here, else started in the engine's *runner* (``engines.registry.find_runner``:
the user config's ``runners``, ``$LLEM_RUNNER_<ENGINE>``, or ``.venv-<engine>`` beside
this installation); ``study.launchers`` holds both.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from threading import Event
from typing import NoReturn

from llenergymeasure import errors
from llenergymeasure.config.loading import load_user_config
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.engines.registry import Runner, find_runner
from llenergymeasure.errors import EngineError, LlemError, PreflightError
from llenergymeasure.study.child import (
    ChildTarget,
    Completed,
    Destination,
    Failed,
    experiment_target,
)
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.launchers import Child, ChildSpec, ForkedChild, RunnerChild
from llenergymeasure.study.models import StudyProtocol
from llenergymeasure.study.outcome import Ended, OutcomeStatus, RunOutcome, outcome_of
from llenergymeasure.study.signals import interrupts_held

__all__ = [
    "ChildTarget",
    "OutcomeStatus",
    "RunLimits",
    "RunOutcome",
    "append_log",
    "experiment_target",
    "log_path",
    "run_in_runner",
    "run_isolated",
]

_POLL_S = 0.1  # how often the parent checks the stop event and the deadlines
_EXIT_GRACE_S = 30.0  # a child that has sent its message gets this long to exit
_DUMP_GRACE_S = 1.0  # a silent child gets this long to write its stack before the kill
OnEvent = Callable[[RunEvent], None]


@dataclass(frozen=True)
class RunLimits:
    """When the parent stops waiting: ``timeout_s`` in all, or ``silence_s`` without news."""

    timeout_s: float = math.inf
    silence_s: float | None = None

    @classmethod
    def of(cls, protocol: StudyProtocol) -> RunLimits:
        """A study's limits on each of its runs."""
        return cls(protocol.experiment_timeout_s, protocol.experiment_silence_timeout_s)

    def limit_s(self, ended: Ended) -> float:
        """The limit a run that ended so ran into: silence, else the timeout."""
        return (self.silence_s or 0.0) if ended == "silent" else self.timeout_s


def log_path(study_dir: Path, index: int, cycle: int) -> Path:
    """``<study_dir>/logs/<NNN>_c<cycle>.log``."""
    return study_dir / "logs" / f"{index:03d}_c{cycle}.log"


def append_log(log: Path, data: bytes) -> None:
    """Append to a run's log (attempts and notes follow each other); never through a link."""
    if not data:
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(log, flags, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def run_isolated(
    config: ExperimentConfig,
    *,
    study_dir: Path,
    index: int,
    cycle: int,
    limits: RunLimits,
    on_progress: OnEvent | None = None,
    stop_event: Event | None = None,
    target: ChildTarget | None = None,
    runners: Mapping[str, str] | None = None,
) -> RunOutcome:
    """Run one experiment in a fresh child process and wait for it; never raises for the child.

    Stops early when ``stop_event`` is set or on KeyboardInterrupt (outcome
    ``interrupted``), at ``limits.timeout_s``, and after ``limits.silence_s`` without an
    event from the child or a byte more in its log (both ``timed_out``); each kills the child's
    process group. ``on_progress`` receives the child's events as they come.
    ``target`` replaces the experiment inside the child (tests). ``runners`` maps engine
    names to interpreters (default: the user config's); the config's engine runs in its
    runner when it has one.
    """
    began = time.monotonic()
    log = log_path(study_dir, index, cycle)
    try:
        if runners is None:
            runners = load_user_config().runners
        # A serving run's load runs here; the server it launches finds its own environment.
        runner = None if config.mode == "serving" else find_runner(config.engine, runners)
    except LlemError as err:
        text = f"{type(err).__name__}: {err.message}"
        return RunOutcome("failed", time.monotonic() - began, text, type(err).__name__)
    destination = Destination(study_dir=study_dir, index=index, cycle=cycle)
    ended, child = _start_and_wait(
        config, runner, destination, log, limits, on_progress, stop_event, target
    )
    return outcome_of(
        child.message,
        child.exit_code,
        ended,
        duration_s=time.monotonic() - began,
        limit_s=limits.limit_s(ended),
        log=log,
    )


# Alike run_isolated, kept apart because a single run and a study run are two public entry points
def run_in_runner(
    config: ExperimentConfig,
    runner: Runner,
    *,
    results_root: Path,
    on_progress: OnEvent | None = None,
    stop_event: Event | None = None,
    target: ChildTarget | None = None,
) -> Path:
    """One experiment (not a study) in ``runner``'s interpreter; returns its result folder.

    The child writes ``<results_root>/<model>-<engine>_<time>/001_c1_.../`` as
    ``llem run`` does here, with the engine's output kept beside it as ``run.log``. The
    child's LlemError is raised again as the same class; a crash is an EngineError
    naming the log; Ctrl-C or ``stop_event`` kills the child and raises
    KeyboardInterrupt.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log = results_root / "logs" / f"{config.engine}-run_{stamp}_{os.getpid()}.log"
    destination = Destination(results_root=results_root)
    began = time.monotonic()
    ended, child = _start_and_wait(
        config, runner, destination, log, RunLimits(), on_progress, stop_event, target
    )
    message = child.message
    if isinstance(message, Completed):
        with contextlib.suppress(OSError):
            log.parent.rmdir()  # the log moved into the result folder; drop an empty logs/
        return message.result_dir
    if isinstance(message, Failed):
        _raise_failed(message, runner, log)
    if ended == "stopped":
        raise KeyboardInterrupt
    outcome = outcome_of(
        None,
        child.exit_code,
        ended,
        duration_s=time.monotonic() - began,
        limit_s=math.inf,
        log=log,
    )
    raise EngineError(
        f"the {config.engine} run in {runner.python} {outcome.message}",
        hint=f"its log: {log}" if outcome.log_path else None,
    )


def _raise_failed(message: Failed, runner: Runner, log: Path) -> NoReturn:
    cls = getattr(errors, message.error_type, None)
    if cls is PreflightError:
        raise PreflightError(list(message.problems) or [message.message], hint=message.hint)
    if isinstance(cls, type) and issubclass(cls, LlemError):
        raise cls(message.message, hint=message.hint)
    raise EngineError(
        f"the {runner.engine} run in {runner.python} failed: "
        f"{message.error_type}: {message.message}",
        hint=f"the traceback is in {log}",
    )


def _start_and_wait(
    config: ExperimentConfig,
    runner: Runner | None,
    destination: Destination,
    log: Path,
    limits: RunLimits,
    on_event: OnEvent | None,
    stop_event: Event | None,
    target: ChildTarget | None,
) -> tuple[Ended, Child]:
    began = time.monotonic()
    watchdog = _Watchdog(log, limits.silence_s, on_event)
    target = target or experiment_target
    # Just before the deadline the child dumps its Python stack into the log.
    timeout_s = limits.timeout_s
    dump_at_unix = (
        time.time() + timeout_s - min(5.0, 0.1 * timeout_s) if math.isfinite(timeout_s) else None
    )
    spec = ChildSpec(target, config, destination, log, dump_at_unix, watchdog.saw)
    child: Child | None = None
    try:
        with interrupts_held():  # a child started half-way could not be killed
            child = ForkedChild(spec) if runner is None else RunnerChild(runner, spec)
        ended = _wait(child, began + timeout_s, stop_event, watchdog)
    except KeyboardInterrupt:
        if child is None:
            raise  # nothing was started: the caller records the interrupt
        ended = "stopped"
    finally:
        if child is not None:
            with interrupts_held():
                child.kill()  # also sweeps anything the child left behind in its group
                child.finish()
    assert child is not None  # without a child, the interrupt was raised on above
    return ended, child


def _wait(child: Child, deadline: float, stop_event: Event | None, watchdog: _Watchdog) -> Ended:
    while True:
        if child.poll(max(0.0, min(_POLL_S, deadline - time.monotonic()))):
            return "exited"
        if child.message is not None:
            deadline = min(deadline, time.monotonic() + _EXIT_GRACE_S)
            watchdog.off()
        if stop_event is not None and stop_event.is_set():
            return "stopped"
        if time.monotonic() >= deadline:
            return "timeout"
        if watchdog.silent():
            child.dump_stack()
            child.poll(_DUMP_GRACE_S)
            return "silent"


class _Watchdog:
    """When the run last showed a sign of life: an event, or its log growing.

    An announced wait (a thermal floor, say) is a sign of life until it ends.
    """

    def __init__(self, log: Path, limit_s: float | None, on_event: OnEvent | None) -> None:
        self._log = log
        self._limit_s = limit_s
        self._on_event = on_event
        self._last = time.monotonic()
        self._quiet_until = self._last
        self._size = -1

    def saw(self, event: RunEvent) -> None:
        """A child's event: pass it on, and note the time."""
        self._last = time.monotonic()
        if event.kind == "wait" and event.seconds is not None:
            self._quiet_until = max(self._quiet_until, self._last + event.seconds)
        if self._on_event is not None:
            self._on_event(event)

    def off(self) -> None:
        """The child has sent its result: only the exit grace is left to wait for."""
        self._limit_s = None

    def silent(self) -> bool:
        """True when nothing was seen for longer than the limit."""
        if self._limit_s is None:
            return False
        now = time.monotonic()
        try:
            size = self._log.stat().st_size
        except OSError:
            size = 0
        if size != self._size:
            self._size, self._last = size, now
        return now - max(self._last, self._quiet_until) > self._limit_s
