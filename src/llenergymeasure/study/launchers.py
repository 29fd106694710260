"""The two ways a study starts an isolated child, behind one small interface (:class:`Child`).

- :class:`ForkedChild`: forked from a fork server of this interpreter, when the engine's
  library is importable here (messages pickled over a pipe, events on a queue);
- :class:`RunnerChild`: a fresh process of another environment's interpreter, the
  engine's *runner* (``python -m llenergymeasure.study``): the config goes in as JSON on
  stdin and messages and events come back as JSON lines, so the two environments need
  not share versions of pydantic or anything else.

Either way the child leads its own process group, so one ``killpg`` stops everything it
started. Both are created with Ctrl-C held (``study.signals``): a child whose start was
cut in half could not be killed.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.queues
import multiprocessing.resource_tracker
import os
import queue
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.engines.registry import Runner
from llenergymeasure.study.child import (
    STACK_DUMP_SIGNAL,
    ChildTarget,
    Completed,
    Destination,
    Failed,
    forked_main,
    message_from_json,
    target_name,
)
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.signals import sigint_blocked

__all__ = ["Child", "ChildSpec", "ForkedChild", "RunnerChild"]

_JOIN_S = 30.0
OnEvent = Callable[[RunEvent], None]


@dataclass(frozen=True)
class ChildSpec:
    """What a child runs and where: the target on the config, its result's destination,
    its log, when it dumps its stack (before a timeout), and where its events go."""

    target: ChildTarget
    config: ExperimentConfig
    destination: Destination
    log: Path
    dump_at_unix: float | None
    on_event: OnEvent


class Child(Protocol):
    """A started child, as the parent watches it."""

    message: Completed | Failed | None
    exit_code: int | None  # set by finish()

    def poll(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for news, pass events on; True once the child exited."""
        ...

    def dump_stack(self) -> None:
        """Ask the child to write its Python stack into its log (before it is killed)."""
        ...

    def kill(self) -> None:
        """SIGKILL the child's whole process group."""
        ...

    def finish(self) -> None:
        """After ``kill``: reap the child, collect what is left, set ``exit_code``."""
        ...


class ForkedChild:
    """A child forked from the fork server of this interpreter."""

    def __init__(self, spec: ChildSpec) -> None:
        ctx = _context(spec.config.engine)
        self._receiver, sender = ctx.Pipe(duplex=False)
        self._events: multiprocessing.queues.Queue[dict[str, Any]] = ctx.Queue()
        self._on_event = spec.on_event
        self._listening = True
        self.message: Completed | Failed | None = None
        self.exit_code: int | None = None
        self._process = ctx.Process(
            target=forked_main,
            args=(spec.target, spec.config, spec.destination, spec.log, spec.dump_at_unix),
            kwargs={
                "parent_pid": os.getpid(),
                "conn": sender,
                "progress": self._events,
                "environ": dict(os.environ),
                "path": list(sys.path),
            },
            name=f"llem-{spec.log.stem}",
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

    def dump_stack(self) -> None:
        if self._process.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self._process.pid, STACK_DUMP_SIGNAL)

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
        self._events.close()
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
                data = self._events.get_nowait()
            except (queue.Empty, OSError, EOFError, ValueError):
                return
            event = RunEvent.from_json(data)
            if event is not None:
                self._on_event(event)


class RunnerChild:
    """A fresh process of a runner's interpreter: ``python -m llenergymeasure.study``."""

    def __init__(self, runner: Runner, spec: ChildSpec) -> None:
        self._on_event = spec.on_event
        self._buffer = b""
        self.message: Completed | Failed | None = None
        self.exit_code: int | None = None
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self._fd: int | None = read_fd
        sent = {
            "config": spec.config.model_dump(mode="json"),
            "target": target_name(spec.target),
            "target_path": _target_path(spec.target),
            "destination": spec.destination.to_json(),
            "log": str(spec.log),
            "dump_at_unix": spec.dump_at_unix,
            "parent_pid": os.getpid(),
            "fd": write_fd,
        }
        try:
            self._process = _start_runner(runner, spec.log, write_fd)
        finally:
            os.close(write_fd)  # the child holds the only write end now
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.write(json.dumps(sent).encode())
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

    def dump_stack(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self._process.pid, STACK_DUMP_SIGNAL)

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
        if isinstance(data.get("event"), dict):
            event = RunEvent.from_json(data["event"])
            if event is not None:
                self._on_event(event)
            return
        message = message_from_json(data)
        if message is not None:
            self.message = message


def _start_runner(runner: Runner, log: Path, write_fd: int) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    # Until the child redirects its own output, what it prints (an import error in the
    # runner's environment, say) goes to the same log.
    with log.open("ab") as early_output:
        return subprocess.Popen(
            [str(runner.python), "-m", "llenergymeasure.study"],
            stdin=subprocess.PIPE,
            stdout=early_output,
            stderr=early_output,
            pass_fds=(write_fd,),
            start_new_session=True,  # its own process group, killed as one
            env=_runner_environment(runner),
        )


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
    since the server starts once. The server starts with SIGINT blocked: a Ctrl-C meant
    for the study must not kill it half-way through importing torch, with a traceback.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD if engine == "transformers" else _PRELOAD[:1])
    # The resource tracker first: starting it unblocks SIGINT in this thread afterwards.
    multiprocessing.resource_tracker.ensure_running()
    with sigint_blocked():
        multiprocessing.forkserver.ensure_running()
    return ctx
