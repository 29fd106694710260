"""A launched server's lifecycle: health check, exit while starting, stop, no orphans."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from llenergymeasure.errors import ServerError
from llenergymeasure.serving.server import (
    LaunchedServer,
    check_port_free,
    free_port,
    listening_pid,
    vllm_server_argv,
)

FAKE = [sys.executable, "-m", "llenergymeasure.testing.fake_openai_server", "--port"]


def test_a_server_is_health_checked_then_stopped_with_its_tree(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    with LaunchedServer([*FAKE, str(port)], port=port, log_file=log) as server:
        assert server.wait_ready(30.0) > 0
        pid = server.pid
        assert pid is not None and listening_pid("127.0.0.1", port) == pid
        assert server.exit_reason() is None
        with pytest.raises(ServerError, match="in use"):
            check_port_free(port)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    check_port_free(port)  # released


def test_a_server_that_exits_while_starting_fails_with_its_last_log_line(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('bad model folder'); sys.exit(3)"]
    server = LaunchedServer(argv, port=free_port(), log_file=tmp_path / "s.log")
    with server, pytest.raises(ServerError, match=r"exited with code 3: bad model folder"):
        server.wait_ready(30.0)


def test_the_server_dies_with_llem_even_when_llem_is_killed(tmp_path: Path) -> None:
    port = free_port()
    parent = textwrap.dedent(
        f"""
        import sys, time
        from llenergymeasure.serving.server import LaunchedServer
        server = LaunchedServer({[*FAKE, str(port)]!r}, port={port}).start()
        server.wait_ready(30.0)
        print(server.pid, flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    server_pid = int(proc.stdout.readline())
    assert psutil.pid_exists(server_pid)
    proc.kill()  # SIGKILL: llem gets no chance to stop anything
    proc.wait()
    deadline = time.monotonic() + 10
    while psutil.pid_exists(server_pid) and time.monotonic() < deadline:
        try:
            if psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    alive = psutil.pid_exists(server_pid) and psutil.Process(server_pid).status() not in (
        psutil.STATUS_ZOMBIE,
    )
    if alive:  # never leave it behind, whatever the assertion says
        os.kill(server_pid, 9)
    assert not alive


def test_engine_arguments_become_server_flags() -> None:
    argv = vllm_server_argv(
        Path("/py"),
        {
            "model": "/m",
            "seed": 7,
            "enforce_eager": True,
            "enable_prefix_caching": False,
            "max_num_seqs": 4,
            "speculative_config": {"n": 1},
            "disable_log_stats": False,
        },
        model_dir=Path("/m"),
        served_name="smollm2-135m",
        port=1234,
    )
    assert argv[:5] == [
        "/py",
        "-W",
        "ignore::DeprecationWarning",
        "-m",
        "vllm.entrypoints.openai.api_server",
    ]
    joined = " ".join(argv)
    assert "--served-model-name smollm2-135m --host 127.0.0.1 --port 1234" in joined
    assert "--seed 7" in joined and "--max-num-seqs 4" in joined
    assert "--enforce-eager" in argv and "--no-enable-prefix-caching" in argv
    assert '--speculative-config {"n": 1}' in joined
    assert "--disable-log-stats" not in joined  # the server's stats feed /metrics
    assert argv.count("--model") == 1
