"""Held interrupts are delivered late, never lost; the fork server never sees a Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llenergymeasure.study.signals import interrupts_held, sigint_blocked

HERE = Path(__file__).resolve().parent
_SHOW_MASK = "import signal; print(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))"


def test_a_ctrl_c_inside_a_held_step_arrives_when_the_step_ends() -> None:
    done: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("the step went on")
        done.append("not reached")
    assert done == ["the step went on"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sigterm_held_reaches_its_own_handler_afterwards() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGTERM)
            assert seen == []
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_nested_holds_deliver_once_the_outermost_ends() -> None:
    with pytest.raises(KeyboardInterrupt), interrupts_held():
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
        reached = True
    assert reached


def test_a_process_started_with_sigint_blocked_keeps_it_blocked() -> None:
    def blocked_in_child() -> str:
        command = [sys.executable, "-c", _SHOW_MASK]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()

    with sigint_blocked():
        assert blocked_in_child() == "True"
    assert blocked_in_child() == "False"


def test_a_ctrl_c_to_this_thread_while_blocked_is_delivered_when_the_block_ends() -> None:
    with pytest.raises(KeyboardInterrupt), sigint_blocked():
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        still_here = True
    assert still_here


_FORK_SERVER_MASK = """
import sys
from pathlib import Path
import psutil
sys.path.insert(0, sys.argv[1])
from study_helpers import tiny
from llenergymeasure.study.isolation import RunLimits, run_isolated

outcome = run_isolated(tiny(), study_dir=Path(sys.argv[2]), index=1, cycle=1, limits=RunLimits(120))
assert outcome.status == "completed", outcome.message
(server,) = [
    p for p in psutil.Process().children()
    if "forkserver" in " ".join(p.cmdline())
]
mask = next(
    int(line.split()[1], 16)
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines()
    if line.startswith("SigBlk:")
)
print(bool(mask & (1 << (2 - 1))))  # SIGINT is signal 2: bit 1
"""


def test_the_fork_server_runs_with_sigint_blocked(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _FORK_SERVER_MASK, str(HERE), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
