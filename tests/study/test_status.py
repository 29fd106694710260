"""Where a study stands, read from outside: while it runs, after it stopped, after it died."""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import child_targets
import pytest
from study_helpers import gone, make_plan, tiny

from llenergymeasure.errors import StudyError
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.isolation import RunOutcome, run_isolated
from llenergymeasure.study.live import LIVE_FILE, LiveStatus, read_live
from llenergymeasure.study.lock import study_lock
from llenergymeasure.study.manifest import Ledger, ManifestEntry
from llenergymeasure.study.models import HeadlineMetrics, StudyProtocol
from llenergymeasure.study.reporter import NullStudyReporter
from llenergymeasure.study.run import run_study
from llenergymeasure.study.status import StudyStatusReport, study_status

PROTOCOL = StudyProtocol(
    n_cycles=3,
    experiment_order="interleave",
    experiment_gap_s=2.0,
    cycle_gap_s=5.0,
    experiment_timeout_s=600.0,
    max_consecutive_failures=10,
)


def wait_for_status(results: Path, accept: object, timeout_s: float = 120) -> StudyStatusReport:
    """Poll the study under ``results`` until ``accept(report)`` holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for folder in results.glob("*/manifest.json"):
            try:
                report = study_status(folder.parent)
            except StudyError:
                continue
            if accept(report):  # type: ignore[operator]
                return report
        time.sleep(0.1)
    raise AssertionError(f"no such status within {timeout_s} s")


def test_a_running_study_shows_its_running_runs_phase_and_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pids"
    monkeypatch.setenv(child_targets.PID_FILE_ENV, str(pid_file))
    stop = threading.Event()
    results = tmp_path / "results"
    study = threading.Thread(
        target=run_study,
        kwargs={
            "plan": make_plan([tiny(), tiny(batch_size=2)]),
            "results_root": results,
            "run_one": functools.partial(run_isolated, target=child_targets.hang_with_grandchild),
            "stop_event": stop,
        },
    )
    study.start()
    try:
        report = wait_for_status(results, lambda r: r.running and r.running[0].phase == "hanging")
    finally:
        stop.set()
        study.join(120)
    assert report.state == "running" and report.status == "running"
    assert report.process is not None and report.process.startswith("pid ")
    (run,) = report.running
    assert (run.index, run.cycle, run.label) == (1, 1, "cfg1")
    assert run.elapsed_s is not None and run.elapsed_s > 0
    assert report.n_completed == 0 and report.n_pending == 1
    assert report.pending == ((2, 1, "cfg2"),)
    assert report.eta_s is None  # no run has completed: nothing to judge by
    assert all(gone(int(pid)) for pid in pid_file.read_text().split())

    after = study_status(report.study_dir)
    assert after.state == "stopped" and after.status == "interrupted"
    assert after.running == ()
    (stopped,) = after.unfinished
    assert stopped.status == "interrupted" and stopped.error is not None
    assert after.stop_reason is not None and "interrupted" in after.stop_reason
    assert not (report.study_dir / LIVE_FILE).exists()


def _study(tmp_path: Path) -> Ledger:
    plan = make_plan([tiny(), tiny(batch_size=2)], n_cycles=3)
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    return Ledger.create(study_dir, plan)


def _finish(ledger: Ledger, index: int, cycle: int, status: str, duration_s: float) -> None:
    entry = next(e for e in ledger.manifest.entries if (e.index, e.cycle) == (index, cycle))
    ledger.finish(ledger.start(entry), RunOutcome(status, duration_s, f"{status}: why"))  # type: ignore[arg-type]


def test_after_it_stopped_the_eta_comes_from_the_mean_durations_so_far(tmp_path: Path) -> None:
    ledger = _study(tmp_path)
    _finish(ledger, 1, 1, "completed", 10.0)
    _finish(ledger, 1, 2, "completed", 20.0)
    _finish(ledger, 2, 1, "failed", 5.0)
    ledger.set_status("failed")
    report = study_status(ledger.study_dir)
    assert report.state == "stopped" and report.status == "failed"
    assert report.n_completed == 2 and report.n_pending == 3
    # Four runs left: config 1 at its mean (15 s); config 2, never completed, at the mean
    # of every completed run (15 s). A stopped study has no gaps or parallel runs to add.
    assert report.eta_s == pytest.approx(60.0)
    (failed,) = report.unfinished
    assert (failed.index, failed.cycle, failed.status, failed.error) == (
        2,
        1,
        "failed",
        "failed: why",
    )
    data = report.to_json()
    assert data["eta_s"] == pytest.approx(60.0) and data["study_dir"] == str(ledger.study_dir)


def test_a_study_whose_process_died_is_told_apart_from_one_that_stopped(tmp_path: Path) -> None:
    ledger = _study(tmp_path)
    live = LiveStatus(ledger.study_dir, NullStudyReporter(), PROTOCOL)
    running = ledger.start(ledger.manifest.entries[0])
    live.run_started(running.label, running.index, running.cycle)
    live.progress(1, 1, RunEvent("phase", "measuring"))
    assert read_live(ledger.study_dir) is not None
    # The process that wrote these is gone (nobody holds the study's lock).
    report = study_status(ledger.study_dir)
    assert report.state == "died"
    assert report.running == ()
    (stale,) = report.unfinished
    assert stale.status == "running" and stale.error is not None and "killed?" in stale.error


def test_the_live_file_follows_phases_progress_and_waits(tmp_path: Path) -> None:
    live = LiveStatus(tmp_path, NullStudyReporter(), PROTOCOL, budget_left_s=60.0)
    live.run_started("cfg1", 1, 2)
    live.progress(1, 2, RunEvent("phase", "measuring"))
    live.progress(1, 2, RunEvent("progress", "measuring", done=0, total=8))
    state = read_live(tmp_path)
    assert state is not None and state.deadline_at is not None
    (run,) = state.runs
    assert (run.index, run.cycle, run.phase, run.total) == (1, 2, "measuring", 8)
    live.progress(1, 2, RunEvent("phase", "warm-up"))
    live.progress(1, 2, RunEvent("wait", "thermal floor", seconds=30.0))
    live.progress(1, 2, RunEvent("alert", "no news from its Ray worker for 6 s"))
    state = read_live(tmp_path)
    assert state is not None
    (run,) = state.runs
    assert run.phase == "warm-up" and run.total is None
    assert run.wait_reason == "thermal floor" and run.wait_until is not None
    assert run.alert == "no news from its Ray worker for 6 s"
    live.waiting(45.0, "thermal gap between cycles")
    live.run_finished(ManifestEntry(index=1, label="cfg1", config_hash="a" * 16, cycle=2))
    state = read_live(tmp_path)
    assert state is not None and state.runs == ()
    assert state.waiting_reason == "thermal gap between cycles"
    live.close()
    assert read_live(tmp_path) is None


def test_the_live_file_keeps_the_windows_tokens_and_energy_so_far(tmp_path: Path) -> None:
    ledger = _study(tmp_path)
    entry = ledger.start(ledger.manifest.entries[0])
    live = LiveStatus(ledger.study_dir, NullStudyReporter(), PROTOCOL)
    live.run_started(entry.label, entry.index, entry.cycle)
    live.progress(1, 1, RunEvent("phase", "measuring"))
    live.progress(1, 1, RunEvent("progress", "measuring", done=0, total=8))
    (run,) = read_live(ledger.study_dir).runs  # type: ignore[union-attr]
    assert run.n_output_tokens is None and run.energy_j is None  # nothing yet: null, not 0
    full = RunEvent(
        "progress",
        "measuring",
        done=8,
        total=8,
        n_output_tokens=256,
        energy_j=41.5,
        energy_method="counter",
    )
    live.progress(1, 1, full)
    # A second pass starts with no tokens of its own yet: the window's count stands.
    live.progress(1, 1, RunEvent("progress", "measuring (pass 2)", done=0, total=8))
    (run,) = read_live(ledger.study_dir).runs  # type: ignore[union-attr]
    assert (run.n_output_tokens, run.energy_j, run.energy_method) == (256, 41.5, "counter")
    with study_lock(ledger.study_dir):  # as the study process holds it
        (shown,) = study_status(ledger.study_dir).running
        as_json = study_status(ledger.study_dir).to_json()["running"][0]
    assert (shown.n_output_tokens, shown.energy_j, shown.energy_method) == (256, 41.5, "counter")
    assert as_json["n_output_tokens"] == 256 and as_json["energy_method"] == "counter"
    live.progress(1, 1, RunEvent("phase", "writing results"))
    (run,) = read_live(ledger.study_dir).runs  # type: ignore[union-attr]
    assert run.n_output_tokens is None and run.energy_j is None
    live.close()


def test_a_folder_without_a_manifest_has_no_status(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"no manifest\.json"):
        study_status(tmp_path)


def test_measured_and_estimated_energy_so_far_are_never_summed(tmp_path: Path) -> None:
    ledger = _study(tmp_path)
    for (index, cycle), energy_j, method in [
        ((1, 1), 100.0, "counter"),
        ((2, 1), 7.0, "estimated"),
        ((1, 2), 50.0, "integrated"),
    ]:
        entry = next(e for e in ledger.manifest.entries if (e.index, e.cycle) == (index, cycle))
        metrics = HeadlineMetrics(
            output_tokens_per_s=1.0,
            j_per_output_token=1.0,
            energy_j=energy_j,
            energy_method=method,
            window_s=1.0,
        )
        ledger.finish(ledger.start(entry), RunOutcome("completed", 2.0, metrics=metrics))
    report = study_status(ledger.study_dir)
    assert (report.energy_so_far_j, report.n_energy_runs) == (150.0, 2)
    assert (report.estimated_so_far_j, report.n_estimated_runs) == (7.0, 1)
    assert [(r.index, r.cycle, r.energy_method) for r in report.completed] == [
        (1, 1, "counter"),
        (2, 1, "estimated"),
        (1, 2, "integrated"),
    ]
