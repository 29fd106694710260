"""The spine under run control: fail-fast, the time budget, the silence watchdog, stops."""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

import child_targets
import pytest
from study_helpers import make_plan, tiny

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.study.isolation import ChildTarget, RunLimits, RunOutcome, run_isolated
from llenergymeasure.study.manifest import Manifest
from llenergymeasure.study.models import HeadlineMetrics
from llenergymeasure.study.run import EXIT_TIMED_OUT, run_study

METRICS = HeadlineMetrics(
    output_tokens_per_s=1.0, j_per_output_token=None, energy_j=None, energy_method=None, window_s=1
)


class Scripted:
    """A RunOne stand-in: the scripted statuses in turn (then completed), each of ``duration_s``."""

    def __init__(self, *statuses: str, duration_s: float = 0.1) -> None:
        self.statuses = list(statuses)
        self.duration_s = duration_s
        self.calls: list[tuple[int, int]] = []

    def __call__(
        self, config: ExperimentConfig, *, index: int, cycle: int, **_: object
    ) -> RunOutcome:
        self.calls.append((index, cycle))
        status = self.statuses.pop(0) if self.statuses else "completed"
        if status == "completed":
            return RunOutcome("completed", self.duration_s, metrics=METRICS)
        return RunOutcome(status, self.duration_s, f"{status}: scripted")  # type: ignore[arg-type]


def configs(n: int) -> list[ExperimentConfig]:
    return [tiny(batch_size=b) for b in range(1, n + 1)]


def test_fail_fast_stops_after_the_first_failed_run_and_the_manifest_says_why(
    tmp_path: Path,
) -> None:
    run_one = Scripted("completed", "crashed")
    outcome = run_study(
        make_plan(configs(4), fail_fast=True), results_root=tmp_path, run_one=run_one
    )
    assert run_one.calls == [(1, 1), (2, 1)]
    assert outcome.status == "fail_fast" and outcome.exit_code == 1
    manifest = Manifest.load(outcome.study_dir)
    assert [e.status for e in manifest.entries] == ["completed", "crashed", "pending", "pending"]
    assert manifest.status == "fail_fast"
    assert manifest.stop_reason == "fail-fast: run 2/c1 (cfg2) crashed: crashed: scripted"
    data = json.loads((outcome.study_dir / "study_result.json").read_text(encoding="utf-8"))
    assert data["status"] == "fail_fast" and data["protocol"]["fail_fast"] is True


def test_the_circuit_breaker_records_why_it_stopped(tmp_path: Path) -> None:
    outcome = run_study(
        make_plan(configs(4), max_consecutive_failures=1),
        results_root=tmp_path,
        run_one=Scripted("failed", "failed"),
        sleep=lambda seconds: None,
    )
    assert outcome.status == "circuit_breaker" and outcome.exit_code == 1
    assert outcome.manifest.stop_reason is not None
    assert "probe run after the pause failed too (run 2/c1" in outcome.manifest.stop_reason


def test_no_run_starts_that_the_durations_so_far_say_cannot_end_in_the_budget(
    tmp_path: Path,
) -> None:
    plan = make_plan(configs(3), study_timeout_s=5.0)
    run_one = Scripted(duration_s=10.0)  # each run is recorded as 10 s long
    first = run_study(plan, results_root=tmp_path, run_one=run_one)
    assert run_one.calls == [(1, 1)]  # no duration known yet, so the first run starts
    assert first.status == "timed_out" and first.exit_code == EXIT_TIMED_OUT == 124
    assert [e.status for e in first.manifest.entries] == ["completed", "pending", "pending"]
    assert first.manifest.stop_reason is not None
    assert "run 2/c1 needs about 10 s" in first.manifest.stop_reason
    assert "--resume" in first.manifest.stop_reason
    # Resumed without a budget, the study finishes exactly what is missing.
    unbounded = make_plan(configs(3))
    again = Scripted()
    second = run_study(unbounded, results_root=tmp_path, resume_dir=first.study_dir, run_one=again)
    assert again.calls == [(2, 1), (3, 1)]
    assert second.status == "completed" and second.manifest.stop_reason is None


class WaitsForTheStop:
    """A RunOne whose run lasts until the study stops it."""

    def __call__(self, config: ExperimentConfig, *, stop_event: threading.Event, **_: object):
        assert stop_event.wait(60), "the study never stopped the run"
        return RunOutcome("interrupted", 0.5, "interrupted: the run was stopped")


def test_a_run_still_going_when_the_budget_ends_is_stopped_and_recorded(tmp_path: Path) -> None:
    outcome = run_study(
        make_plan(configs(2), study_timeout_s=0.5),
        results_root=tmp_path,
        run_one=WaitsForTheStop(),  # type: ignore[arg-type]
    )
    assert outcome.status == "timed_out" and outcome.exit_code == 124
    first, second = outcome.manifest.entries
    assert first.status == "interrupted"
    assert first.error == (
        "interrupted: the study's time budget ran out; its process group was killed"
    )
    assert second.status == "pending"
    assert outcome.manifest.stop_reason is not None
    assert "ran out with runs still going" in outcome.manifest.stop_reason


def test_ctrl_c_during_a_thermal_gap_stops_the_study_with_nothing_left_running(
    tmp_path: Path,
) -> None:
    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    outcome = run_study(
        make_plan(configs(3), experiment_gap_s=30.0),
        results_root=tmp_path,
        run_one=Scripted(),
        sleep=ctrl_c,
    )
    assert outcome.status == "interrupted" and outcome.exit_code == 130
    assert [e.status for e in outcome.manifest.entries] == ["completed", "pending", "pending"]
    assert not (outcome.study_dir / "status.json").exists()


# --------------------------------------------------- the silence watchdog, real children


def test_a_silent_run_is_stopped_by_the_watchdog_with_its_stack_in_the_log(
    tmp_path: Path,
) -> None:
    outcome = run_isolated(
        tiny(),
        study_dir=tmp_path,
        index=1,
        cycle=1,
        limits=RunLimits(120, 1.5),
        target=child_targets.silent_hang,
    )
    assert outcome.status == "timed_out"
    assert outcome.message is not None and "silent for 1.5 s" in outcome.message
    assert outcome.log_path is not None
    assert "in silent_hang" in outcome.log_path.read_text(encoding="utf-8")


@pytest.mark.parametrize("target", [child_targets.long_announced_wait, child_targets.chatty])
def test_an_announced_wait_or_a_talking_run_is_not_silent(
    tmp_path: Path, target: ChildTarget
) -> None:
    outcome = run_isolated(
        tiny(),
        study_dir=tmp_path,
        index=1,
        cycle=1,
        limits=RunLimits(120, 1.5),
        target=target,
    )
    assert outcome.status == "completed", outcome.message


def test_the_watchdog_reaches_the_manifest_through_the_study(tmp_path: Path) -> None:
    outcome = run_study(
        make_plan([tiny()], experiment_silence_timeout_s=1.5),
        results_root=tmp_path,
        run_one=functools.partial(run_isolated, target=child_targets.silent_hang),
    )
    (entry,) = outcome.manifest.entries
    assert entry.status == "timed_out"
    assert entry.error is not None and "silent for 1.5 s" in entry.error
    assert outcome.result.protocol.experiment_silence_timeout_s == 1.5
