"""RunControl: the circuit breaker, fail-fast and the time budget, on a fake clock."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from llenergymeasure.study.control import BREAKER_PAUSE_S, RunControl, format_s
from llenergymeasure.study.manifest import ManifestEntry
from llenergymeasure.study.models import StudyProtocol


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def protocol(**changes: Any) -> StudyProtocol:
    base: dict[str, Any] = {
        "n_cycles": 1,
        "experiment_order": "sequential",
        "experiment_gap_s": 0.0,
        "cycle_gap_s": 0.0,
        "experiment_timeout_s": 600.0,
        "max_consecutive_failures": 2,
    }
    return StudyProtocol(**{**base, **changes})


def entry(index: int, status: str = "pending", duration_s: float | None = None) -> ManifestEntry:
    return ManifestEntry(
        index=index,
        label=f"cfg{index}",
        config_hash=f"{index:016x}",
        cycle=1,
        status=status,  # type: ignore[arg-type]
        duration_s=duration_s,
        error="RuntimeError: boom" if status == "failed" else None,
    )


def test_the_breaker_pauses_after_n_failures_then_stops_when_the_probe_fails() -> None:
    control = RunControl(protocol(max_consecutive_failures=2))
    assert control.after(entry(1, "failed")) is None
    assert control.pause() == (0.0, "")
    assert control.after(entry(2, "crashed")) is None
    seconds, reason = control.pause()
    assert seconds == BREAKER_PAUSE_S and "2 failures in a row" in reason
    assert control.before(entry(3)) is None  # the probe
    stop = control.after(entry(3, "timed_out"))
    assert stop is not None and stop.status == "circuit_breaker"
    assert "run 3/c1 (cfg3) timed_out" in stop.reason


def test_a_run_already_going_when_the_breaker_tripped_is_no_probe() -> None:
    control = RunControl(protocol(max_consecutive_failures=1))
    for index in (1, 2, 3):  # three runs in flight at once, as on a Ray cluster
        assert control.before(entry(index)) is None
    assert control.after(entry(1, "failed")) is None
    assert control.pause()[0] == BREAKER_PAUSE_S
    assert control.after(entry(2, "failed")) is None  # started before the trip
    assert control.after(entry(3, "crashed")) is None
    assert control.before(entry(4)) is None  # after the pause: the probe
    stop = control.after(entry(4, "failed"))
    assert stop is not None and stop.status == "circuit_breaker"
    assert "3 failed runs in a row" in stop.reason and "run 4/c1" in stop.reason


def test_a_completed_run_resets_the_breaker_and_an_interrupted_one_counts_for_nothing() -> None:
    control = RunControl(protocol(max_consecutive_failures=1))
    assert control.after(entry(1, "failed")) is None
    assert control.after(entry(2, "interrupted")) is None
    assert control.pause()[0] == BREAKER_PAUSE_S  # still one failure in a row
    assert control.after(entry(3, "completed", 1.0)) is None
    assert control.pause() == (0.0, "")


def test_fail_fast_stops_at_the_first_failed_run_and_says_which() -> None:
    control = RunControl(protocol(fail_fast=True, max_consecutive_failures=10))
    assert control.after(entry(1, "completed", 2.0)) is None
    assert control.after(entry(2, "interrupted")) is None
    stop = control.after(entry(3, "failed"))
    assert stop is not None and stop.status == "fail_fast"
    assert stop.reason == "fail-fast: run 3/c1 (cfg3) failed: RuntimeError: boom"


def test_the_budget_starts_a_run_only_when_its_gap_and_expected_duration_fit() -> None:
    clock = Clock()
    history = [entry(1, "completed", 30.0), entry(1, "completed", 40.0), entry(2, "failed")]
    control = RunControl(protocol(study_timeout_s=100.0), history, clock=clock)
    assert control.expected_s(entry(1).config_hash) == 40.0  # the longest of its own
    assert control.expected_s(entry(9).config_hash) == 40.0  # untimed: the longest of all
    assert control.before(entry(1), wait_s=50.0) is None  # 90 of 100 s
    clock.now += 20.0
    stop = control.before(entry(1), wait_s=50.0)  # 90 s needed, 80 s left
    assert stop is not None and stop.status == "timed_out"
    assert "1 min 20 s left" in stop.reason and "--resume" in stop.reason
    assert control.before(entry(1)) is None  # without the gap it fits
    clock.now += 41.0
    assert control.before(entry(1)) is not None


def test_without_any_duration_only_the_gap_must_fit_and_a_spent_budget_stops_all() -> None:
    clock = Clock()
    control = RunControl(protocol(study_timeout_s=10.0), clock=clock)
    assert control.before(entry(1), wait_s=9.0) is None
    assert control.before(entry(1), wait_s=11.0) is not None
    clock.now += 10.0
    stop = control.before(entry(1))
    assert stop is not None and "an unknown time" in stop.reason


def test_no_budget_never_stops_a_run_from_starting() -> None:
    control = RunControl(protocol(), [entry(1, "completed", 1e9)])
    assert control.before(entry(1), wait_s=1e9) is None
    assert control.deadline_left_s is None
    assert control.out_of_time() is None


def test_when_the_budget_runs_out_the_stop_event_is_set_and_out_of_time_says_so() -> None:
    stop = threading.Event()
    control = RunControl(protocol(study_timeout_s=0.05))
    control.arm(stop)
    assert stop.wait(30), "the budget's timer never fired"
    ended = control.out_of_time()
    assert ended is not None and ended.status == "timed_out"
    control.disarm()


def test_disarming_before_the_budget_ends_leaves_the_stop_event_alone() -> None:
    stop = threading.Event()
    control = RunControl(protocol(study_timeout_s=3600.0))
    control.arm(stop)
    control.disarm()
    assert not stop.is_set() and control.out_of_time() is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0 s"), (45, "45 s"), (60, "1 min"), (750, "12 min 30 s"), (7500, "2 h 5 min")],
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert format_s(seconds) == text


def test_a_budget_beyond_what_a_timer_can_wait_arms_without_error() -> None:
    # A protocol built in code skips the config's cap; threading.Timer would raise
    # OverflowError in its own thread (a traceback) for a wait above TIMEOUT_MAX.
    stop = threading.Event()
    control = RunControl(protocol(study_timeout_s=1e300))
    errors: list[BaseException] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)  # type: ignore[assignment]
    try:
        control.arm(stop)
        stop.wait(0.3)  # a timer that cannot wait fails at once
    finally:
        threading.excepthook = previous
        control.disarm()
    assert not errors and not stop.is_set()
