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


# ----------------------------------------------------------- the same through `llem run`

CLI_STUDY = """\
study_name: sig
engine: fake
task: {dataset: {n_prompts: 2}, max_output_tokens: 4}
fake: {token_latency_ms: 250}
measurement: {warmup: {enabled: false}, energy_sampler: estimate}
sweep: {fake.batch_size: [1, 2]}
study_execution: {n_cycles: 1, experiment_order: interleave, experiment_gap_s: 1.5}
"""
# trial -> (the stderr line that opens the phase, signal, extra flags)
CLI_TRIALS = {
    "window, ctrl-c": ("run 1/c1: measuring", "ctrl-c", ()),
    "gap, sigterm": ("thermal gap between experiments", "sigterm", ()),
    "report, ctrl-c": ("study written to", "ctrl-c", ("--report",)),
}


def _llem(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "llenergymeasure", "run", "study.yaml", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LLEM_CACHE_DIR": str(cwd / "cache")},
        start_new_session=True,
    )


def _wait_for_stderr_line(proc: subprocess.Popen[str], wanted: str) -> list[str]:
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:  # the live table's lines: stderr is no terminal here
        seen.append(line.rstrip("\n"))
        if line.startswith(wanted):
            return seen
    raise AssertionError(f"`llem run` ended before `{wanted}`: {seen}")


@pytest.mark.parametrize("trial", list(CLI_TRIALS))
def test_a_signal_to_llem_run_stops_cleanly_and_resume_finishes(trial: str, tmp_path: Path) -> None:
    opened, how, flags = CLI_TRIALS[trial]
    (tmp_path / "study.yaml").write_text(CLI_STUDY, encoding="utf-8")
    proc = _llem(tmp_path, *flags)
    try:
        before = _wait_for_stderr_line(proc, opened)
        _send(proc, how)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "\n".join(before) + "\n" + rest
    assert "Traceback" not in err, err
    (study_dir,) = [p for p in (tmp_path / "results").iterdir() if (p / MANIFEST_FILE).is_file()]
    statuses = {(e.index, e.cycle): e.status for e in Manifest.load(study_dir).entries}
    assert "running" not in statuses.values(), statuses
    if trial.startswith("report"):
        # After the study's last file: the study completed; the report may not be whole.
        assert proc.returncode in (0, 130), err
        assert set(statuses.values()) == {"completed"}
    else:
        assert proc.returncode == 130, err
        assert "interrupted; finish it with: llem run" in err
        expected = "interrupted" if trial.startswith("window") else "pending"
        assert statuses[(1, 1) if expected == "interrupted" else (2, 1)] == expected, statuses

    resumed = _llem(tmp_path, "--resume", str(study_dir), *flags)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, (out, err)
    assert "Traceback" not in err, err
    manifest = Manifest.load(study_dir)
    assert sorted((e.index, e.cycle, e.status) for e in manifest.entries) == [
        (1, 1, "completed"),
        (2, 1, "completed"),
    ]
    runs = sorted(p.name[:6] for p in study_dir.iterdir() if p.name[:3].isdigit())
    assert runs == ["001_c1", "002_c1"]  # each config x cycle exactly once
    if flags:
        assert (study_dir / "report.html").is_file()  # the resume wrote it whole
