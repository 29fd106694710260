"""`llem run study.yaml` unattended: --timeout, --fail-fast, `llem results status`, 80 columns.

Real `llem` processes on fake-engine studies. Waits are on observable events (the
manifest, the live status) with generous deadlines; nothing here depends on the speed
of the machine beyond those deadlines.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from llenergymeasure.config.study import expand_study
from llenergymeasure.errors import StudyError
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.live import LiveStatus
from llenergymeasure.study.lock import study_lock
from llenergymeasure.study.manifest import Ledger, Manifest
from llenergymeasure.study.models import StudyProtocol
from llenergymeasure.study.reporter import NullStudyReporter
from llenergymeasure.study.status import StudyStatusReport, study_status

PROTOCOL = StudyProtocol(
    n_cycles=1,
    experiment_order="interleave",
    experiment_gap_s=0.0,
    cycle_gap_s=0.0,
    experiment_timeout_s=600.0,
    max_consecutive_failures=10,
)
BUDGET_STUDY = """\
study_name: budget
engine: fake
task: {dataset: {n_prompts: 2}, max_output_tokens: 4}
fake: {token_latency_ms: 250}
measurement: {warmup: {enabled: false}, energy_sampler: estimate}
sweep: {fake.batch_size: [1, 2]}
study_execution: {n_cycles: 3, experiment_order: interleave, experiment_gap_s: 0, cycle_gap_s: 0}
"""
BUDGET_S = 6.0
# Killing and reaping a run stopped at the deadline, on a loaded 2-core machine.
STOP_GRACE_S = 20.0
# From a run's recorded end to the decision about the next: the manifest write between.
DECISION_LAG_S = 1.0

LONG_NAME = "a-study-whose-name-is-far-too-long-to-fit-in-eighty-columns-of-terminal"
FAILING_STUDY = f"""\
study_name: {LONG_NAME}
engine: fake
task: {{dataset: {{n_prompts: 2}}, max_output_tokens: 2}}
measurement: {{warmup: {{enabled: false}}, energy_sampler: estimate}}
sweep:
  task.dataset.source: [builtin, no-such-prompts-file-with-a-long-name-as-well.jsonl]
  fake.batch_size: [1, 2]
study_execution: {{n_cycles: 1, experiment_order: interleave}}
"""

SLOW_STUDY = """\
study_name: slow
engine: fake
task: {dataset: {n_prompts: 2}, max_output_tokens: 30}
fake: {token_latency_ms: 1000}
measurement: {warmup: {enabled: false}, energy_sampler: estimate}
sweep: {fake.batch_size: [1, 2]}
study_execution: {n_cycles: 1, experiment_order: interleave}
"""


def llem(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llenergymeasure", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def study_dir(cwd: Path) -> Path:
    (found,) = (p for p in (cwd / "results").iterdir() if (p / "manifest.json").is_file())
    return found


def test_a_timeout_stops_launching_in_time_exits_124_and_resume_finishes(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(BUDGET_STUDY, encoding="utf-8")
    first = llem("run", "study.yaml", "--timeout", f"{BUDGET_S:g}s", cwd=tmp_path)
    assert first.returncode == 124, first.stderr
    assert "Traceback" not in first.stderr
    assert "time budget of 6 s" in first.stderr and "--resume" in first.stderr
    folder = study_dir(tmp_path)
    manifest = Manifest.load(folder)
    assert manifest.status == "timed_out" and manifest.stop_reason
    statuses = [e.status for e in manifest.entries]
    assert statuses.count("completed") < len(statuses)
    assert "running" not in statuses
    # Every run of the session ended within the budget (plus the time to stop one).
    for entry in manifest.entries:
        if entry.ended_at is not None:
            assert (entry.ended_at - manifest.created_at).total_seconds() < BUDGET_S + STOP_GRACE_S
    _no_run_started_that_could_not_fit(manifest)

    second = llem("run", "study.yaml", "--resume", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    manifest = Manifest.load(folder)
    assert manifest.status == "completed" and manifest.stop_reason is None
    keys = sorted((e.index, e.cycle) for e in manifest.entries)
    assert keys == [(i, c) for i in (1, 2) for c in (1, 2, 3)]
    assert all(e.status == "completed" for e in manifest.entries)
    runs = sorted(p.name[:6] for p in folder.iterdir() if p.name[:3].isdigit())
    assert runs == sorted(f"{i:03d}_c{c}" for i, c in keys)  # one folder per run


def _no_run_started_that_could_not_fit(manifest: Manifest) -> None:
    """Every run started inside the budget, and the next one could not have ended in it."""
    budget_end = manifest.created_at + timedelta(seconds=BUDGET_S)
    for entry in manifest.entries:
        if entry.started_at is not None:
            assert entry.started_at < budget_end, entry
    assert manifest.stop_reason is not None
    done = [e for e in manifest.entries if e.status == "completed"]
    if "ran out with runs still going" in manifest.stop_reason:
        assert [e.status for e in manifest.entries].count("interrupted") == 1
        return
    assert "so no more runs start" in manifest.stop_reason and done
    following = next(e for e in manifest.entries if e.status == "pending")  # planned order
    own = [e.duration_s for e in done if e.config_hash == following.config_hash]
    expected_s = max(d for d in own or [e.duration_s for e in done] if d is not None)
    last_end = max(e.ended_at for e in done if e.ended_at is not None)
    left_s = (budget_end - last_end).total_seconds()
    assert left_s < expected_s + DECISION_LAG_S, (left_s, expected_s)


def test_fail_fast_and_the_breaker_limit_come_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(FAILING_STUDY, encoding="utf-8")
    proc = llem("run", "study.yaml", "--fail-fast", "--max-consecutive-failures", "3", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    folder = study_dir(tmp_path)
    manifest = Manifest.load(folder)
    assert manifest.status == "fail_fast"
    assert [e.status for e in manifest.entries] == ["completed", "completed", "failed", "pending"]
    assert manifest.stop_reason is not None and manifest.stop_reason.startswith(
        "fail-fast: run 3/c1"
    )
    assert "stopped early: fail-fast: run 3/c1" in " ".join(proc.stderr.split())
    protocol = json.loads((folder / "study_result.json").read_text(encoding="utf-8"))["protocol"]
    assert protocol["fail_fast"] is True and protocol["max_consecutive_failures"] == 3
    for line in proc.stdout.splitlines():  # the summary table fits 80 columns
        assert len(line) <= 80, line

    listed = llem("results", "list", "results", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert all(len(line) <= 80 for line in listed.stdout.splitlines()), listed.stdout
    assert folder.name not in listed.stdout and "…" in listed.stdout
    assert folder.name[-16:] in listed.stdout  # the end of the name (its time) stays
    wide = llem("results", "list", "results", "--wide", cwd=tmp_path)
    assert folder.name in wide.stdout
    (item,) = json.loads(llem("results", "list", "results", "--json", cwd=tmp_path).stdout)
    assert item["name"] == folder.name and item["status"] == "fail_fast"
    assert item["n_completed"] == 2 and item["n_failed"] == 1


def test_the_plan_fits_80_columns_and_wide_shows_whole_labels(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(FAILING_STUDY, encoding="utf-8")
    narrow = llem("run", "study.yaml", "--dry-run", cwd=tmp_path)
    assert narrow.returncode == 0, narrow.stderr
    assert all(len(line) <= 80 for line in narrow.stdout.splitlines()), narrow.stdout
    label = "source=no-such-prompts-file-with-a-long-name-as-well.jsonl"
    assert label not in narrow.stdout and "…" in narrow.stdout
    wide = llem("run", "study.yaml", "--dry-run", "--wide", cwd=tmp_path)
    assert label in wide.stdout


def test_bad_run_control_flags_are_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(BUDGET_STUDY, encoding="utf-8")
    (tmp_path / "one.yaml").write_text("engine: fake\n", encoding="utf-8")
    for args in (["study.yaml", "--timeout", "soon"], ["one.yaml", "--timeout", "5s"]):
        proc = llem("run", *args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
        assert "--timeout" in proc.stderr.splitlines()[0]
    assert not (tmp_path / "results").exists()


def _wait_for(check: Callable[[], StudyStatusReport | None], timeout_s: float) -> StudyStatusReport:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = check()
        except (StudyError, ValueError, OSError):
            found = None
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not reached within {timeout_s:g} s")


def test_status_of_a_study_running_in_another_process_shows_the_runs_phase(
    tmp_path: Path,
) -> None:
    (tmp_path / "study.yaml").write_text(SLOW_STUDY, encoding="utf-8")
    study = subprocess.Popen(
        [sys.executable, "-m", "llenergymeasure", "run", "study.yaml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def measuring() -> StudyStatusReport | None:
            report = study_status(study_dir(tmp_path))
            running = report.running[0] if report.running else None
            return report if running is not None and running.phase == "measuring" else None

        _wait_for(measuring, 180)
        folder = study_dir(tmp_path)
        shown = llem("results", "status", str(folder), cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "study slow: running" in shown.stdout
        assert "measuring for" in shown.stdout and "1/c1" in shown.stdout
        assert "pending: 2/c1" in shown.stdout
        as_json = json.loads(llem("status", str(folder), "--json", cwd=tmp_path).stdout)
        assert as_json["state"] == "running"
        assert [(r["index"], r["phase"]) for r in as_json["running"]] == [(1, "measuring")]
        assert (folder / "status.json").is_file()
    finally:
        study.send_signal(signal.SIGTERM)
        _, err = study.communicate(timeout=120)
    assert study.returncode == 130, err
    after = llem("results", "status", str(folder), cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert "not running; status interrupted" in after.stdout
    assert "interrupted" in after.stdout and "1/c1" in after.stdout


def test_durations_no_timer_can_wait_are_refused_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(BUDGET_STUDY, encoding="utf-8")
    for field in ("study_timeout_s", "experiment_silence_timeout_s", "experiment_timeout_s"):
        huge = BUDGET_STUDY.replace("cycle_gap_s: 0}", f"cycle_gap_s: 0, {field}: 1e10}}")
        (tmp_path / f"{field}.yaml").write_text(huge, encoding="utf-8")
    cases = [
        (["study.yaml", "--timeout", "1e10"], "--timeout"),
        (["study.yaml", "--timeout", "200000d"], "--timeout"),
        (["study.yaml", "--max-consecutive-failures", "0"], "--max-consecutive-failures"),
        (["study_timeout_s.yaml"], "study_timeout_s"),
        (["experiment_silence_timeout_s.yaml"], "experiment_silence_timeout_s"),
        (["experiment_timeout_s.yaml"], "experiment_timeout_s"),
    ]
    for args, named in cases:
        proc = llem("run", *args, cwd=tmp_path, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr, args
        assert named in proc.stderr.splitlines()[0], (args, proc.stderr)
    assert not (tmp_path / "results").exists()


def test_status_shows_a_running_runs_tokens_and_energy_so_far(tmp_path: Path) -> None:
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    plan = expand_study(
        {"engine": "fake", "sweep": {"fake.batch_size": [1]}, "study_execution": {"n_cycles": 1}},
        base_dir=tmp_path,
        name="live",
    )
    ledger = Ledger.create(study_dir, plan)
    entry = ledger.start(ledger.manifest.entries[0])
    live = LiveStatus(study_dir, NullStudyReporter(), PROTOCOL)
    live.run_started(entry.label, entry.index, entry.cycle)
    live.progress(1, 1, RunEvent("phase", "measuring"))
    event = RunEvent(
        "progress", "measuring", 8, 8, n_output_tokens=96, energy_j=12.5, energy_method="counter"
    )
    live.progress(1, 1, event)  # the window's last: written at once (others every 5 s)
    with study_lock(study_dir):  # the study's process holds it while it runs
        shown = llem("results", "status", str(study_dir), "--wide", cwd=tmp_path)
        as_json = json.loads(llem("status", str(study_dir), "--json", cwd=tmp_path).stdout)
    assert shown.returncode == 0, shown.stderr
    assert "8 of 8 done" in shown.stdout
    assert "96 tokens · 12.5 J so far (counter)" in shown.stdout
    (running,) = as_json["running"]
    assert (running["n_output_tokens"], running["energy_j"], running["energy_method"]) == (
        96,
        12.5,
        "counter",
    )


def test_a_dry_run_with_json_prints_the_plan_as_json(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(FAILING_STUDY, encoding="utf-8")
    proc = llem("run", "study.yaml", "--dry-run", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)  # JSON alone on stdout, no table
    assert plan["study_name"] == LONG_NAME and len(plan["design_hash"]) == 16
    labels = [c["label"] for c in plan["configs"]]
    assert len(labels) == 4 and any("no-such-prompts-file-with-a-long-name" in x for x in labels)
    assert all(c["config"]["engine"] == "fake" for c in plan["configs"])
    assert plan["runs"] == [{"index": i, "cycle": 1} for i in (1, 2, 3, 4)]  # interleave
    assert plan["execution"]["n_cycles"] == 1 and plan["skipped"] == []
    assert plan["estimate"]["total_s"] >= 0
    assert not (tmp_path / "results").exists()
