"""Ctrl-C or SIGTERM at any moment: no traceback, the manifest whole, resume finishes it.

Each trial starts a two-run study as a real process (``signal_study.py``), waits for it
to announce a phase, lets hypothesis choose how far into the phase the signal lands and
which signal it is (SIGINT to the whole process group, as a terminal's Ctrl-C; SIGTERM
to the study process, as ``kill`` or a scheduler), then checks:

- the study exits with 130 (or ends normally when the signal came after its last file
  was written), and nothing prints a traceback (the study, the fork server, the
  experiment child);
- the manifest loads, nothing is left ``running``, and a run the signal hit in flight
  is ``interrupted``; no process of the study is left behind;
- a resume then completes every (config, cycle) exactly once, one folder each.

The phases: a child's start-up (the fork server's window), the baseline, the measured
window, the thermal gap between the runs, and the writing of the study's summary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llenergymeasure.study.manifest import MANIFEST_FILE, Manifest

pytestmark = pytest.mark.slow

HARNESS = Path(__file__).resolve().parent / "signal_study.py"
# phase -> (the line that opens it, the latest moment in it to signal, seconds)
PHASES = {
    "start-up": ("started 1/c1", 0.6),
    "baseline": ("phase 1/c1 baseline", 1.2),
    "window": ("phase 1/c1 measuring", 0.8),
    "gap": ("waiting thermal gap", 1.2),
    "summary": ("note writing the study summary", 0.05),
}
IN_FLIGHT = ("start-up", "baseline", "window")  # a run is running when these are hit
SIGNALS = {"ctrl-c": signal.SIGINT, "sigterm": signal.SIGTERM}


def _start(results: Path, env: dict[str, str], *resume: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HARNESS), str(results), *resume],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own group, as a shell gives a foreground job
    )


def _wait_for_line(proc: subprocess.Popen[str], wanted: str) -> list[str]:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the study ended before `{wanted}`: {seen}")
        seen.append(line.strip())
        if line.startswith(wanted):
            return seen
    raise AssertionError(f"no `{wanted}` within 180 s: {seen}")


def _send(proc: subprocess.Popen[str], how: str) -> None:
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # the whole group, as a terminal does
    else:
        proc.send_signal(signal.SIGTERM)  # the study process alone


def _trial(root: Path, phase: str, how: str, into: float) -> None:
    results = root / "results"
    env = {**os.environ, "LLEM_CACHE_DIR": str(root / "cache")}
    proc = _start(results, env)
    try:
        opened, latest_s = PHASES[phase]
        _wait_for_line(proc, opened)
        time.sleep(into * latest_s)
        descendants = psutil.Process(proc.pid).children(recursive=True)
        _send(proc, how)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err, err
    # A signal that comes after the study's last file: exit 0, or the signal's own end
    # once the process exits (Python gives the default handlers back as it shuts down).
    finished = proc.returncode in (0, -signal.SIGTERM) and "\nstudy " in f"\n{out}"
    assert proc.returncode == 130 or (phase == "summary" and finished), (out, err)
    _, alive = psutil.wait_procs(descendants, timeout=30)
    assert not alive, f"left running after the signal: {alive}"
    (study_dir,) = [p for p in results.iterdir() if (p / MANIFEST_FILE).is_file()]
    manifest = Manifest.load(study_dir)
    statuses = {(e.index, e.cycle): e.status for e in manifest.entries}
    assert "running" not in statuses.values(), statuses
    if phase in IN_FLIGHT:
        assert statuses[(1, 1)] == "interrupted", statuses
    if phase == "gap":
        assert statuses == {(1, 1): "completed", (2, 1): "pending"}, statuses

    resumed = _start(results, env, str(study_dir))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, (out, err)
    assert "Traceback" not in err, err
    manifest = Manifest.load(study_dir)
    assert sorted((e.index, e.cycle, e.status) for e in manifest.entries) == [
        (1, 1, "completed"),
        (2, 1, "completed"),
    ]
    runs = sorted(p.name[:6] for p in study_dir.iterdir() if p.name[:3].isdigit())
    assert runs == ["001_c1", "002_c1"]  # one folder per run: nothing duplicated or lost


@pytest.mark.parametrize("phase", list(PHASES))
@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(how=st.sampled_from(list(SIGNALS)), into=st.floats(0.0, 1.0))
def test_a_signal_at_any_moment_of_a_phase_stops_cleanly_and_resume_finishes(
    phase: str, how: str, into: float, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _trial(tmp_path_factory.mktemp(f"signal-{phase}"), phase, how, into)
