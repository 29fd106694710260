"""One experiment in a fresh subprocess, with a typed outcome (DESIGN.md §6).

The child runs the experiment, writes its result folder itself (large results never
cross the pipe) and sends back one small message: completed (folder + headline
metrics) or failed (exception type + message; the traceback goes to
``<study_dir>/logs/<NNN>_c<cycle>.log``). Step names come back through a queue. The
child leads its own process group, so a timeout or an interrupt kills everything it
started. How a run ended is one of :data:`OutcomeStatus`.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import multiprocessing
import multiprocessing.queues
import os
import queue
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing.connection import Connection, wait
from pathlib import Path
from threading import Event
from typing import Literal, TypeAlias

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.experiment.reporter import NullReporter, Reporter
from llenergymeasure.experiment.run import run_experiment
from llenergymeasure.results.models import ExperimentResult
from llenergymeasure.results.persistence import write_experiment
from llenergymeasure.study.models import HeadlineMetrics

__all__ = [
    "ChildTarget",
    "OutcomeStatus",
    "RunOutcome",
    "experiment_target",
    "log_path",
    "run_isolated",
]

OutcomeStatus = Literal["completed", "failed", "crashed", "timed_out", "interrupted"]

# What the child runs in place of the experiment. It must be importable by name
# (a module-level function), because the fork server pickles it by reference.
ChildTarget: TypeAlias = Callable[[ExperimentConfig, Reporter], ExperimentResult]

_POLL_S = 0.1  # how often the parent checks the stop event and the deadline
_EXIT_GRACE_S = 30.0  # a child that has sent its message gets this long to exit
_JOIN_S = 30.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class RunOutcome:
    """How one isolated run ended; ``message`` is one line for the manifest."""

    status: OutcomeStatus
    duration_s: float
    message: str | None = None
    error_type: str | None = None
    result_dir: Path | None = None
    metrics: HeadlineMetrics | None = None
    log_path: Path | None = None
    exit_code: int | None = None
    signal_name: str | None = None


def experiment_target(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    """The default child target: the real experiment."""
    return run_experiment(config, reporter=reporter)


def log_path(study_dir: Path, index: int, cycle: int) -> Path:
    """``<study_dir>/logs/<NNN>_c<cycle>.log``."""
    return study_dir / "logs" / f"{index:03d}_c{cycle}.log"


def run_isolated(
    config: ExperimentConfig,
    *,
    study_dir: Path,
    index: int,
    cycle: int,
    timeout_s: float,
    on_progress: Callable[[str], None] | None = None,
    stop_event: Event | None = None,
    target: ChildTarget | None = None,
) -> RunOutcome:
    """Run one experiment in a fresh child process and wait for it; never raises for the child.

    Stops early when ``stop_event`` is set or on KeyboardInterrupt (outcome
    ``interrupted``), and at ``timeout_s`` (``timed_out``); both kill the child's
    process group. ``target`` replaces the experiment inside the child (tests).
    """
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    progress: multiprocessing.queues.Queue[str] = ctx.Queue()
    log = log_path(study_dir, index, cycle)
    began = time.monotonic()
    dump_at_unix = time.time() + timeout_s - min(5.0, 0.1 * timeout_s)
    child = ctx.Process(
        target=_child_main,
        args=(target or experiment_target, config, study_dir, index, cycle, log, dump_at_unix),
        kwargs={
            "parent_pid": os.getpid(),
            "conn": sender,
            "progress": progress,
            "environ": dict(os.environ),
            "path": list(sys.path),
        },
        name=f"llem-{index:03d}-c{cycle}",
    )
    child.start()
    sender.close()  # the child holds the only write end now
    watch = _Watch(child, receiver, progress, on_progress or (lambda step: None))
    try:
        ended = watch.until(began + timeout_s, stop_event)
    except KeyboardInterrupt:
        ended = "stopped"
    finally:
        _kill_group(child)  # also sweeps anything the child left behind in its group
        child.join(_JOIN_S)
        watch.close()
    return _outcome(watch.message, ended, child.exitcode, time.monotonic() - began, timeout_s, log)


# ----------------------------------------------------------------- child side


@dataclass(frozen=True)
class _Completed:
    result_dir: Path
    metrics: HeadlineMetrics


@dataclass(frozen=True)
class _Failed:
    error_type: str
    message: str


class _QueueReporter(NullReporter):
    """The experiment's Reporter inside the child: step names go to the parent."""

    def __init__(self, progress: multiprocessing.queues.Queue[str]) -> None:
        self._progress = progress

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._progress.put(name)
        yield


def _child_main(
    target: ChildTarget,
    config: ExperimentConfig,
    study_dir: Path,
    index: int,
    cycle: int,
    log: Path,
    dump_at_unix: float,
    *,
    parent_pid: int,
    conn: Connection,
    progress: multiprocessing.queues.Queue[str],
    environ: dict[str, str],
    path: list[str],
) -> None:
    os.setsid()  # lead a new process group: the parent kills the whole group on timeout
    _die_with_parent(parent_pid)
    # The fork server started with the parent's environment of that moment; use today's.
    os.environ.clear()
    os.environ.update(environ)
    sys.path[:] = path
    began_size, quiet_size = _log_to(log)
    # A segfault, or a hang that reaches the deadline, leaves a Python stack in the log.
    faulthandler.enable()
    if dump_at_unix > time.time():
        faulthandler.dump_traceback_later(dump_at_unix - time.time())
    message: _Completed | _Failed
    try:
        result = target(config, _QueueReporter(progress))
        folder = write_experiment(result, study_dir, index=index, cycle=cycle)
        message = _Completed(folder, HeadlineMetrics.of(result))
    except BaseException as err:  # every failure becomes a typed message
        traceback.print_exc()
        message = _Failed(type(err).__name__, _one_line(err))
    finally:
        faulthandler.cancel_dump_traceback_later()
        sys.stdout.flush()
        sys.stderr.flush()
    if log.stat().st_size == quiet_size:  # nothing to say: drop this attempt's header
        os.truncate(log, began_size)
        if began_size == 0:
            log.unlink()
    conn.send(message)
    conn.close()


def _log_to(log: Path) -> tuple[int, int]:
    """Send this process's stdout and stderr (and its children's) to the run's log.

    Engines print a lot; in the log it stays next to the traceback and out of the
    parent's live display. Returns the log's size before and after this attempt's header.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    began_size = os.fstat(fd).st_size
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    os.write(fd, f"--- {log.stem}: attempt started {started} (pid {os.getpid()})\n".encode())
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return began_size, os.fstat(2).st_size


def _die_with_parent(parent_pid: int) -> None:
    """On Linux, SIGKILL this child when its parent dies: no orphan keeps the GPU busy.

    The child's parent is the fork server, which exits when the study process does.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:  # the study process died before prctl took effect
        os._exit(1)


# Imported once by the fork server, so that each child skips them (~3.5 s on a 2-core CPU).
# transformers imports lazily, so name the parts every load touches (and the default model's
# architecture).
_PRELOAD = [
    "llenergymeasure.experiment.run",
    "llenergymeasure.engines.transformers",
    "torch",
    "transformers",
    "transformers.generation.utils",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.llama.modeling_llama",
    "safetensors.torch",
]


def _context() -> multiprocessing.context.ForkServerContext:
    """Fork server, not fork and not plain spawn.

    Not fork: forking a process that may hold a CUDA context corrupts it. The fork
    server is a fresh interpreter that imports torch but never touches CUDA, so each
    child forked from it still starts its own CUDA context clean, while the imports
    are paid once per study instead of once per run. Modules that are not installed
    are skipped by the server.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:500]


# ---------------------------------------------------------------- parent side


class _Watch:
    """Waits on the child, receiving its message and draining progress as it comes."""

    def __init__(
        self,
        child: multiprocessing.process.BaseProcess,
        receiver: Connection,
        progress: multiprocessing.queues.Queue[str],
        on_progress: Callable[[str], None],
    ) -> None:
        self._child = child
        self._receiver = receiver
        self._progress = progress
        self._on_progress = on_progress
        self.message: _Completed | _Failed | None = None

    def until(
        self, deadline: float, stop_event: Event | None
    ) -> Literal["exited", "timeout", "stopped"]:
        listening = True
        while True:
            watched: list[Connection | int] = [
                self._child.sentinel,
                *([self._receiver] if listening else []),
            ]
            ready = wait(watched, timeout=max(0.0, min(_POLL_S, deadline - time.monotonic())))
            self._drain()
            if self._receiver in ready:
                listening = self._receive()
                if self.message is not None:
                    deadline = min(deadline, time.monotonic() + _EXIT_GRACE_S)
            if self._child.sentinel in ready:
                return "exited"
            if stop_event is not None and stop_event.is_set():
                return "stopped"
            if time.monotonic() >= deadline:
                return "timeout"

    def close(self) -> None:
        """After the child is gone: collect what is still in the pipe and the queue."""
        if self.message is None:
            with contextlib.suppress(OSError):
                while self._receiver.poll() and self._receive():
                    pass
        self._drain()
        self._receiver.close()
        self._progress.close()

    def _receive(self) -> bool:
        """Read one message; False once the child's end is closed."""
        try:
            self.message = self._receiver.recv()
        except (EOFError, OSError):
            return False
        return True

    def _drain(self) -> None:
        while True:
            try:
                step = self._progress.get_nowait()
            except (queue.Empty, OSError, EOFError):
                return
            self._on_progress(step)


def _kill_group(child: multiprocessing.process.BaseProcess) -> None:
    if child.pid is None:
        return
    # The child is not reaped before join(), so its pid (= its group id) cannot be reused.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.kill()  # in case it had not yet called setsid()


def _outcome(
    message: _Completed | _Failed | None,
    ended: str,
    exit_code: int | None,
    duration_s: float,
    timeout_s: float,
    log: Path,
) -> RunOutcome:
    kept_log = log if log.is_file() and log.stat().st_size > 0 else None
    if isinstance(message, _Completed):
        metrics = message.metrics
        return RunOutcome(
            "completed",
            duration_s,
            result_dir=message.result_dir,
            metrics=metrics,
            log_path=kept_log,
        )
    if isinstance(message, _Failed):
        text = f"{message.error_type}: {message.message}" if message.message else message.error_type
        return RunOutcome(
            "failed", duration_s, text, message.error_type, log_path=kept_log, exit_code=exit_code
        )
    if ended == "stopped":
        text = "interrupted: the run was stopped and its process group killed"
        return RunOutcome("interrupted", duration_s, text, log_path=kept_log)
    if ended == "timeout":
        text = f"timed out: no result after {timeout_s:g} s; its process group was killed"
        return RunOutcome("timed_out", duration_s, text, log_path=kept_log)
    return _crash(exit_code, duration_s, kept_log)


def _crash(exit_code: int | None, duration_s: float, log: Path | None) -> RunOutcome:
    if exit_code is not None and exit_code < 0:
        name = _signal_name(-exit_code)
        text = f"crashed: killed by {name}"
        if -exit_code == signal.SIGKILL:
            text += " (possibly the OOM killer)"
        return RunOutcome(
            "crashed", duration_s, text, log_path=log, exit_code=exit_code, signal_name=name
        )
    text = f"crashed: exited with code {exit_code} before sending a result"
    return RunOutcome("crashed", duration_s, text, log_path=log, exit_code=exit_code)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
