"""The child side of an isolated run: run the experiment, write its folder, report once.

Two ways in. The study's own interpreter forks children from a fork server
(:func:`forked_main`, messages pickled over a pipe). An engine that lives in another
virtual environment runs in a fresh process of that environment's interpreter:
``python -m llenergymeasure.study`` (:func:`main`) reads a JSON spec on stdin and writes JSON
lines to the file descriptor the spec names. JSON, not pickles: the two
environments may hold different versions of pydantic and the rest.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import importlib
import json
import multiprocessing.queues
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any, TypeAlias

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import LlemError
from llenergymeasure.experiment.reporter import Reporter
from llenergymeasure.experiment.run import run_experiment, write_single_run
from llenergymeasure.records.base import FrozenRecord
from llenergymeasure.records.files import write_experiment
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.study.events import EventReporter, RunEvent
from llenergymeasure.study.models import HeadlineMetrics

__all__ = [
    "ChildTarget",
    "Completed",
    "Destination",
    "Failed",
    "experiment_target",
    "forked_main",
    "main",
    "message_from_json",
    "message_to_json",
    "target_name",
]

# What the child runs in place of the experiment. It must be importable by name (a
# module-level function): the fork server pickles it by reference, a runner imports it.
ChildTarget: TypeAlias = Callable[[ExperimentConfig, Reporter], ExperimentResult]

_PR_SET_PDEATHSIG = 1
# The log of a single run, moved into its result folder once the run has written it.
RUN_LOG = "run.log"
# The parent sends this before killing a silent run: the child writes its Python stack
# into the log, so that the log says where it hung.
STACK_DUMP_SIGNAL = signal.SIGUSR1
# The phase of a child writing its result folder, after the experiment returned.
WRITING_PHASE = "writing results"


def experiment_target(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    """The default child target: the real experiment."""
    return run_experiment(config, reporter=reporter)


def target_name(target: ChildTarget) -> str:
    """``module:function`` of a module-level target."""
    return f"{target.__module__}:{target.__qualname__}"


@dataclass(frozen=True)
class Destination:
    """Where the child writes the result: a study's run folder, or a single run's."""

    study_dir: Path | None = None
    index: int = 1
    cycle: int = 1
    results_root: Path | None = None

    def write(self, result: ExperimentResult) -> Path:
        if self.results_root is not None:
            return write_single_run(result, self.results_root)
        if self.study_dir is None:
            raise ValueError("a Destination needs a study_dir or a results_root")
        return write_experiment(result, self.study_dir, index=self.index, cycle=self.cycle)

    def to_json(self) -> dict[str, Any]:
        return {
            "study_dir": None if self.study_dir is None else str(self.study_dir),
            "index": self.index,
            "cycle": self.cycle,
            "results_root": None if self.results_root is None else str(self.results_root),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Destination:
        study_dir, root = data.get("study_dir"), data.get("results_root")
        return cls(
            study_dir=None if study_dir is None else Path(study_dir),
            index=int(data.get("index", 1)),
            cycle=int(data.get("cycle", 1)),
            results_root=None if root is None else Path(root),
        )


class Completed(FrozenRecord):
    """The run finished: where its result was written, and its headline figures."""

    result_dir: Path
    metrics: HeadlineMetrics


class Failed(FrozenRecord):
    """The run failed: the error's type, its one-line message, hint and problems."""

    error_type: str
    message: str
    hint: str | None = None
    problems: tuple[str, ...] = ()


def message_to_json(message: Completed | Failed) -> dict[str, Any]:
    """The final message as JSON (what a runner sends on its pipe)."""
    kind = "completed" if isinstance(message, Completed) else "failed"
    return {kind: message.model_dump(mode="json")}


def message_from_json(data: Mapping[str, Any]) -> Completed | Failed | None:
    """The inverse of :func:`message_to_json`; None for anything else (a progress line)."""
    if "completed" in data:
        return Completed.model_validate(data["completed"])
    if "failed" in data:
        return Failed.model_validate(data["failed"])
    return None


# ------------------------------------------------------------------ running the target


def _run(
    resolve: Callable[[], tuple[ChildTarget, ExperimentConfig]],
    destination: Destination,
    log: Path,
    dump_at_unix: float | None,
    reporter: Reporter,
) -> Completed | Failed:
    """Run the target ``resolve`` gives, output in ``log``; every failure is a typed message."""
    began_size, quiet_size = _log_to(log)
    # A segfault, or a hang that reaches the deadline or the silence limit, leaves a
    # Python stack in the log.
    faulthandler.enable()
    faulthandler.register(STACK_DUMP_SIGNAL, all_threads=True)
    if dump_at_unix is not None and dump_at_unix > time.time():
        faulthandler.dump_traceback_later(dump_at_unix - time.time())
    message: Completed | Failed
    try:
        target, config = resolve()
        result = target(config, reporter)
        with reporter.step(WRITING_PHASE):
            folder = destination.write(result)
        message = Completed(result_dir=folder, metrics=HeadlineMetrics.of(result))
    except BaseException as err:  # every failure becomes a typed message
        traceback.print_exc()
        message = _failed(err)
    finally:
        faulthandler.cancel_dump_traceback_later()
        sys.stdout.flush()
        sys.stderr.flush()
    if log.stat().st_size == quiet_size:  # nothing to say: drop this attempt's header
        os.truncate(log, began_size)
        if began_size == 0:
            log.unlink()
    elif destination.results_root is not None and isinstance(message, Completed):
        # A single run keeps its engine's log next to its result.
        log.replace(message.result_dir / RUN_LOG)
    return message


def _failed(err: BaseException) -> Failed:
    if isinstance(err, LlemError):
        problems = tuple(getattr(err, "problems", ()) or ())
        return Failed(
            error_type=type(err).__name__,
            message=_one_line(err.message),
            hint=err.hint,
            problems=problems,
        )
    return Failed(error_type=type(err).__name__, message=_one_line(str(err)))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def _log_to(log: Path) -> tuple[int, int]:
    """Send this process's stdout and stderr (and its children's) to the run's log.

    Engines print a lot; in the log it stays next to the traceback and out of the
    parent's live display. Returns the log's size before and after this attempt's header.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW: a symlink planted where the log goes is refused, not written through.
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
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
    """On Linux, SIGKILL this child when its parent dies: no orphan keeps the GPU busy."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:  # the parent died before prctl took effect
        os._exit(1)


# -------------------------------------------------------- a child of the fork server


def _ignore_the_terminal() -> None:
    """Lead a new session, out of reach of the terminal's Ctrl-C, then take SIGINT normally.

    The fork server starts with SIGINT blocked (``study.signals.sigint_blocked``) and
    its children inherit the block: a Ctrl-C meant for the study may be pending here
    from before ``setsid``. Ignoring SIGINT discards it; then the usual handler returns.
    """
    os.setsid()  # lead a new process group: the parent kills the whole group on timeout
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)


def forked_main(
    target: ChildTarget,
    config: ExperimentConfig,
    destination: Destination,
    log: Path,
    dump_at_unix: float | None,
    *,
    parent_pid: int,
    conn: Connection,
    progress: multiprocessing.queues.Queue[dict[str, Any]],
    environ: dict[str, str],
    path: list[str],
) -> None:
    """Entry of a child forked from the fork server; the message goes back pickled."""
    _ignore_the_terminal()
    # Its parent is the fork server, which exits when the study process does.
    _die_with_parent(parent_pid)
    # The fork server started with the parent's environment of that moment; use today's.
    os.environ.clear()
    os.environ.update(environ)
    sys.path[:] = path
    reporter = EventReporter(lambda event: progress.put(event.to_json()))
    message = _run(lambda: (target, config), destination, log, dump_at_unix, reporter)
    conn.send(message)
    conn.close()


# ---------------------------------------------- a fresh process of another interpreter


def _json_line(out: IO[str]) -> Callable[[RunEvent], None]:
    """Send events as JSON lines on a runner's message pipe."""

    def send(event: RunEvent) -> None:
        out.write(json.dumps({"event": event.to_json()}) + "\n")
        out.flush()

    return send


def _import_target(name: str, search_path: str | None) -> ChildTarget:
    if search_path and search_path not in sys.path:
        sys.path.insert(0, search_path)
    module_name, _, attribute = name.partition(":")
    target: ChildTarget = getattr(importlib.import_module(module_name), attribute)
    return target


def main() -> int:
    """Entry of ``python -m llenergymeasure.study`` in a runner: the spec is JSON on stdin.

    The spec holds the config (as JSON), the target (``module:function``), where to
    write, the log path, the deadline for a stack dump, the parent's pid and the file
    descriptor for messages. The process already leads its own session (the parent
    started it so); every outcome, success or not, is one JSON line on that descriptor.
    """
    spec = json.loads(sys.stdin.read())
    with os.fdopen(int(spec["fd"]), "w", encoding="utf-8") as out:
        _die_with_parent(int(spec["parent_pid"]))
        message = _run(
            lambda: (
                _import_target(spec["target"], spec.get("target_path")),
                ExperimentConfig.model_validate(spec["config"]),
            ),
            Destination.from_json(spec["destination"]),
            Path(spec["log"]),
            spec.get("dump_at_unix"),
            EventReporter(_json_line(out)),
        )
        out.write(json.dumps(message_to_json(message)) + "\n")
    return 0
