"""One experiment in a fresh subprocess, with a typed outcome (DESIGN.md §6).

The child runs the experiment, writes its result folder itself (large results never
cross the pipe) and sends back one small message: completed (folder + headline
metrics) or failed (exception type + message; the traceback goes to
``<study_dir>/logs/<NNN>_c<cycle>.log``). Step names come back as they start. The
child leads its own process group, so a timeout or an interrupt kills everything it
started. How a run ended is one of :data:`OutcomeStatus`.

A child is started one of two ways (``study.child`` holds its side of both):

- forked from a fork server of this interpreter, when the engine's library is
  importable here (messages pickled over a pipe);
- as a fresh process of another environment's interpreter, the engine's *runner*
  (``engines.registry.find_runner``: the user config's ``runners``,
  ``$LLEM_RUNNER_<ENGINE>``, or ``.venv-<engine>`` beside this installation), when the
  engine lives there (vLLM pins its own torch and transformers). The config goes in as
  JSON on stdin and messages come back as JSON lines, so the two environments need not
  share versions of pydantic or anything else.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import multiprocessing.queues
import os
import queue
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing.connection import Connection, wait
from pathlib import Path
from threading import Event
from typing import Literal, NoReturn, Protocol

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
    forked_main,
    message_from_json,
    target_name,
)
from llenergymeasure.study.models import HeadlineMetrics

__all__ = [
    "ChildTarget",
    "OutcomeStatus",
    "RunOutcome",
    "experiment_target",
    "log_path",
    "run_in_runner",
    "run_isolated",
]

OutcomeStatus = Literal["completed", "failed", "crashed", "timed_out", "interrupted"]

_POLL_S = 0.1  # how often the parent checks the stop event and the deadline
_EXIT_GRACE_S = 30.0  # a child that has sent its message gets this long to exit
_JOIN_S = 30.0
_Ended = Literal["exited", "timeout", "stopped"]


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
    runners: Mapping[str, str] | None = None,
) -> RunOutcome:
    """Run one experiment in a fresh child process and wait for it; never raises for the child.

    Stops early when ``stop_event`` is set or on KeyboardInterrupt (outcome
    ``interrupted``), and at ``timeout_s`` (``timed_out``); both kill the child's
    process group. ``target`` replaces the experiment inside the child (tests).
    ``runners`` maps engine names to interpreters (default: the user config's); the
    config's engine runs in its runner when it has one.
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
        config, runner, destination, log, timeout_s, on_progress, stop_event, target
    )
    return _outcome(child, ended, time.monotonic() - began, timeout_s, log)


def run_in_runner(
    config: ExperimentConfig,
    runner: Runner,
    *,
    results_root: Path,
    on_progress: Callable[[str], None] | None = None,
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
        config, runner, destination, log, math.inf, on_progress, stop_event, target
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
    outcome = _outcome(child, ended, time.monotonic() - began, math.inf, log)
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


# ---------------------------------------------------------------- the two launchers


class _Child(Protocol):
    """A started child, as the parent watches it."""

    message: Completed | Failed | None
    exit_code: int | None  # set by finish()

    def poll(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for news, pass on progress; True once the child exited."""
        ...

    def kill(self) -> None:
        """SIGKILL the child's whole process group."""
        ...

    def finish(self) -> None:
        """After ``kill``: reap the child, collect what is left, set ``exit_code``."""
        ...


def _start_and_wait(
    config: ExperimentConfig,
    runner: Runner | None,
    destination: Destination,
    log: Path,
    timeout_s: float,
    on_progress: Callable[[str], None] | None,
    stop_event: Event | None,
    target: ChildTarget | None,
) -> tuple[_Ended, _Child]:
    began = time.monotonic()
    progress = on_progress or (lambda step: None)
    target = target or experiment_target
    # Just before the deadline the child dumps its Python stack into the log.
    dump_at_unix = (
        time.time() + timeout_s - min(5.0, 0.1 * timeout_s) if math.isfinite(timeout_s) else None
    )
    child: _Child
    if runner is None:
        child = _ForkedChild(target, config, destination, log, dump_at_unix, progress)
    else:
        child = _RunnerChild(runner, target, config, destination, log, dump_at_unix, progress)
    try:
        ended = _wait(child, began + timeout_s, stop_event)
    except KeyboardInterrupt:
        ended = "stopped"
    finally:
        child.kill()  # also sweeps anything the child left behind in its group
        child.finish()
    return ended, child


def _wait(child: _Child, deadline: float, stop_event: Event | None) -> _Ended:
    while True:
        if child.poll(max(0.0, min(_POLL_S, deadline - time.monotonic()))):
            return "exited"
        if child.message is not None:
            deadline = min(deadline, time.monotonic() + _EXIT_GRACE_S)
        if stop_event is not None and stop_event.is_set():
            return "stopped"
        if time.monotonic() >= deadline:
            return "timeout"


class _ForkedChild:
    """A child forked from the fork server of this interpreter."""

    def __init__(
        self,
        target: ChildTarget,
        config: ExperimentConfig,
        destination: Destination,
        log: Path,
        dump_at_unix: float | None,
        on_progress: Callable[[str], None],
    ) -> None:
        ctx = _context(config.engine)
        self._receiver, sender = ctx.Pipe(duplex=False)
        self._progress: multiprocessing.queues.Queue[str] = ctx.Queue()
        self._on_progress = on_progress
        self._listening = True
        self.message: Completed | Failed | None = None
        self.exit_code: int | None = None
        self._process = ctx.Process(
            target=forked_main,
            args=(target, config, destination, log, dump_at_unix),
            kwargs={
                "parent_pid": os.getpid(),
                "conn": sender,
                "progress": self._progress,
                "environ": dict(os.environ),
                "path": list(sys.path),
            },
            name=f"llem-{log.stem}",
        )
        self._process.start()
        sender.close()  # the child holds the only write end now

    def poll(self, timeout_s: float) -> bool:
        watched: list[Connection | int] = [
            self._process.sentinel,
            *([self._receiver] if self._listening else []),
        ]
        ready = wait(watched, timeout=timeout_s)
        self._drain()
        if self._receiver in ready:
            self._listening = self._receive()
        return self._process.sentinel in ready

    def kill(self) -> None:
        if self._process.pid is None:
            return
        # The child is not reaped before join(), so its pid (= its group id) cannot be reused.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.kill()  # in case it had not yet called setsid()

    def finish(self) -> None:
        self._process.join(_JOIN_S)
        if self.message is None:
            with contextlib.suppress(OSError):
                while self._receiver.poll() and self._receive():
                    pass
        self._drain()
        self._receiver.close()
        self._progress.close()
        self.exit_code = self._process.exitcode

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


class _RunnerChild:
    """A fresh process of a runner's interpreter: ``python -m llenergymeasure.study``."""

    def __init__(
        self,
        runner: Runner,
        target: ChildTarget,
        config: ExperimentConfig,
        destination: Destination,
        log: Path,
        dump_at_unix: float | None,
        on_progress: Callable[[str], None],
    ) -> None:
        self._on_progress = on_progress
        self._buffer = b""
        self.message: Completed | Failed | None = None
        self.exit_code: int | None = None
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self._fd: int | None = read_fd
        spec = {
            "config": config.model_dump(mode="json"),
            "target": target_name(target),
            "target_path": _target_path(target),
            "destination": destination.to_json(),
            "log": str(log),
            "dump_at_unix": dump_at_unix,
            "parent_pid": os.getpid(),
            "fd": write_fd,
        }
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Until the child redirects its own output, what it prints (an import error in
            # the runner's environment, say) goes to the same log.
            with log.open("ab") as early_output:
                self._process = subprocess.Popen(
                    [str(runner.python), "-m", "llenergymeasure.study"],
                    stdin=subprocess.PIPE,
                    stdout=early_output,
                    stderr=early_output,
                    pass_fds=(write_fd,),
                    start_new_session=True,  # its own process group, killed as one
                    env=_runner_environment(runner),
                )
        finally:
            os.close(write_fd)  # the child holds the only write end now
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.write(json.dumps(spec).encode())
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()

    def poll(self, timeout_s: float) -> bool:
        if self._fd is not None:
            ready, _, _ = select.select([self._fd], [], [], timeout_s)
            if ready:
                self._read()
        else:
            time.sleep(timeout_s)
        return self._exited()

    def kill(self) -> None:
        # Not reaped before finish() (waitid with WNOWAIT), so the group id cannot be reused.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)

    def finish(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(_JOIN_S)
        while self._fd is not None and self._read():
            pass
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.exit_code = self._process.returncode

    def _exited(self) -> bool:
        try:
            found = os.waitid(os.P_PID, self._process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return found is not None

    def _read(self) -> bool:
        """Read what the pipe holds and handle each complete line; False at EOF or when empty."""
        assert self._fd is not None
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            os.close(self._fd)
            self._fd = None
            return False
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._handle(line)
        return True

    def _handle(self, line: bytes) -> None:
        try:
            data = json.loads(line)
        except ValueError:
            return  # not ours: the child's messages are JSON objects, one per line
        if not isinstance(data, dict):
            return
        if isinstance(data.get("step"), str):
            self._on_progress(data["step"])
            return
        message = message_from_json(data)
        if message is not None:
            self.message = message


def _target_path(target: ChildTarget) -> str | None:
    """The folder to import a target from when it is not part of this package (tests)."""
    if target.__module__.startswith("llenergymeasure."):
        return None
    module = sys.modules.get(target.__module__)
    file = getattr(module, "__file__", None)
    return str(Path(file).parent) if file else None


def _runner_environment(runner: Runner) -> dict[str, str]:
    """This environment, pointed at the runner's: its bin first, no paths of ours."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(filter(None, [str(runner.python.parent), env.get("PATH")]))
    env["VIRTUAL_ENV"] = str(runner.python.parent.parent)
    return env


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


def _context(engine: str) -> multiprocessing.context.ForkServerContext:
    """Fork server, not fork and not plain spawn.

    Not fork: forking a process that may hold a CUDA context corrupts it. The fork
    server is a fresh interpreter that imports torch but never touches CUDA, so each
    child forked from it still starts its own CUDA context clean, while the imports
    are paid once per study instead of once per run. Modules that are not installed
    are skipped by the server. Only a transformers run preloads torch: for other engines
    it would cost seconds per study and save nothing. The first run of a process decides,
    since the server starts once.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD if engine == "transformers" else _PRELOAD[:1])
    return ctx


# ---------------------------------------------------------------- the outcome


def _outcome(
    child: _Child, ended: _Ended, duration_s: float, timeout_s: float, log: Path
) -> RunOutcome:
    message = child.message
    exit_code = child.exit_code
    kept_log = log if log.is_file() and log.stat().st_size > 0 else None
    if isinstance(message, Completed):
        return RunOutcome(
            "completed",
            duration_s,
            result_dir=message.result_dir,
            metrics=message.metrics,
            log_path=kept_log,
        )
    if isinstance(message, Failed):
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
    last = _last_line(log)
    if last:
        text += f" (its log ends: {last})"
    return RunOutcome("crashed", duration_s, text, log_path=log, exit_code=exit_code)


def _last_line(log: Path | None) -> str | None:
    """The last non-empty line of a log, e.g. an import error in a runner's environment."""
    if log is None:
        return None
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - 4096))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return " ".join(lines[-1].split())[:300] if lines else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
