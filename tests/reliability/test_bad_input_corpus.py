"""Bad input never crashes: every case of tests/corpus/bad/ is one clear error, fast, no files.

The corpus runs in this process through the CLI entry point (``main(argv)``), because a
fresh interpreter per case costs about a second of start-up; a handful of cases marked
``subprocess: true`` also run as real ``python -m llenergymeasure`` processes, to show
that what a user sees out of process is the same. See bad_corpus.py for the contract.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest
from bad_corpus import (
    CASES_FILE,
    Case,
    argv,
    check,
    corpus_files,
    environment,
    lay_out,
    listing,
    load_cases,
    rapl_readable,
    used_files,
)

from llenergymeasure.cli.app import main

CASES = load_cases()
# The bar: a bad input is refused within 5 s. In process that is the work alone; a real
# process adds interpreter start-up, which on a loaded 2-core machine can take seconds.
LIMIT_S = 5.0
SUBPROCESS_LIMIT_S = 20.0
HARD_STOP_S = 30.0  # a case still running then has hung: stop it and fail


class CaseTimeout(BaseException):
    """Raised in the main thread when a case runs past HARD_STOP_S (not an Exception,
    so the CLI's last line of defence does not swallow it)."""


@contextmanager
def hard_stop(seconds: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise CaseTimeout(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _skip_if_host_differs(case: Case) -> None:
    if case.skip_if_rapl and rapl_readable():
        pytest.skip("this host exposes a readable RAPL counter")


def test_the_corpus_has_at_least_60_cases_and_uses_every_file() -> None:
    assert len(CASES) >= 60
    unused = corpus_files() - used_files(CASES)
    assert not unused, f"corpus files no case uses: {sorted(unused)}"
    missing = {rel for case in CASES.values() for rel in case.files} - {
        str(p.relative_to(CASES_FILE.parent)) for p in CASES_FILE.parent.rglob("*")
    }
    assert not missing, f"cases name files the corpus lacks: {sorted(missing)}"
    assert sum(case.subprocess for case in CASES.values()) >= 5


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input_in_process(
    case_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[case_id]
    _skip_if_host_differs(case)
    cwd = tmp_path / "work"
    lay_out(case, cwd)
    for name, value in environment(case, cwd, tmp_path / "scratch").items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(cwd)
    before = listing(cwd)
    out, err = io.StringIO(), io.StringIO()
    began = time.monotonic()
    with hard_stop(HARD_STOP_S), redirect_stdout(out), redirect_stderr(err):
        code = main(argv(case))
    elapsed_s = time.monotonic() - began
    check(case, code, out.getvalue(), err.getvalue())
    assert listing(cwd) == before, "a failed run left files behind"
    assert elapsed_s < LIMIT_S, f"took {elapsed_s:.1f} s"


SUBPROCESS_CASES = [case_id for case_id, case in CASES.items() if case.subprocess]


@dataclass(frozen=True)
class Finished:
    cwd: Path
    before: set[str]
    proc: subprocess.CompletedProcess[str]
    elapsed_s: float


def _run_process(case: Case, root: Path) -> Finished:
    cwd = root / "work"
    lay_out(case, cwd)
    env = {**os.environ, **environment(case, cwd, root / "scratch")}
    before = listing(cwd)
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "llenergymeasure", *argv(case)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=HARD_STOP_S * 2,
        check=False,
    )
    return Finished(cwd, before, proc, time.monotonic() - began)


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Finished]:
    """Every subprocess case, run a few at a time: start-up is most of each one's time."""
    base = tmp_path_factory.mktemp("bad-input-processes")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            case_id: pool.submit(_run_process, CASES[case_id], base / case_id)
            for case_id in SUBPROCESS_CASES
            if not (CASES[case_id].skip_if_rapl and rapl_readable())
        }
        return {case_id: future.result() for case_id, future in futures.items()}


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_input_in_a_real_process(case_id: str, processes: dict[str, Finished]) -> None:
    case = CASES[case_id]
    _skip_if_host_differs(case)
    done = processes[case_id]
    check(case, done.proc.returncode, done.proc.stdout, done.proc.stderr)
    assert listing(done.cwd) == done.before, "a failed run left files behind"
    assert done.elapsed_s < SUBPROCESS_LIMIT_S, f"took {done.elapsed_s:.1f} s"
