"""The steady-state window: when ramp-up is over, and the deadline of a load that never settles."""

from __future__ import annotations

import pytest

from llenergymeasure.serving.window import SteadyStateDetector, mean_between, window_deadline_s


def _run(
    counts: list[int], tick_s: float, latency_s: float, deadline_s: float
) -> tuple[float, str]:
    detector = SteadyStateDetector()
    for i, n in enumerate(counts):
        now = i * tick_s
        rule = detector.observe(
            now, n, [latency_s], first_sent_s=0.0, deadline_reached=now >= deadline_s
        )
        if rule is not None:
            return now, rule
    raise AssertionError("the window never started")


def test_a_ramp_then_a_plateau_starts_the_window_once_settled() -> None:
    # in flight climbs by one per second to 8, then stays
    counts = [min(8, int(i * 0.1)) for i in range(400)]
    at, rule = _run(counts, 0.1, 1.0, deadline_s=30.0)
    assert rule == "stabilised"
    assert 8.0 < at < 12.0  # two seconds of plateau are needed


def test_a_load_that_keeps_growing_starts_at_the_deadline() -> None:
    counts = [i for i in range(400)]  # ten more in flight every second: saturated
    at, rule = _run(counts, 0.1, 1.0, deadline_s=20.0)
    assert rule == "deadline"
    assert at == pytest.approx(20.0)


def test_the_deadline_leaves_the_minimum_window_and_half_the_period() -> None:
    assert window_deadline_s(60, 10) == 30  # half the period
    assert window_deadline_s(30, 20) == 10  # the minimum window
    assert window_deadline_s(5, 10) == 0


def test_mean_between_is_over_the_samples_in_the_half_open_span() -> None:
    samples = [(0.0, 1), (1.0, 3), (2.0, 5)]
    assert mean_between(samples, 0.0, 2.0) == 4.0
    assert mean_between(samples, 2.0, 3.0) is None
