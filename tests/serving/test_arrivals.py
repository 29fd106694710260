"""Arrival processes: counts, rates, seeds and the gamma burstiness of vLLM's benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from llenergymeasure.config.serving import ArrivalConfig
from llenergymeasure.errors import ConfigError
from llenergymeasure.serving.arrivals import arrival_schedule


def test_constant_rate_schedules_rate_times_duration_exactly() -> None:
    schedule = arrival_schedule(ArrivalConfig(process="constant", rate=10), seed=1, duration_s=4)
    assert len(schedule.times_s) == 40
    assert schedule.times_s[0] == pytest.approx(0.1)
    assert schedule.times_s[-1] == pytest.approx(4.0)
    assert schedule.rate_per_s == pytest.approx(10.0)


def test_a_seed_gives_the_same_poisson_schedule_and_another_seed_another() -> None:
    arrival = ArrivalConfig(process="poisson", rate=5)
    a = arrival_schedule(arrival, seed=3, duration_s=30)
    b = arrival_schedule(arrival, seed=3, duration_s=30)
    c = arrival_schedule(arrival, seed=4, duration_s=30)
    assert a == b
    assert a.times_s != c.times_s
    assert all(0 < t <= 30 for t in a.times_s)
    assert list(a.times_s) == sorted(a.times_s)


def test_poisson_gaps_are_exponential_with_mean_one_over_rate() -> None:
    schedule = arrival_schedule(ArrivalConfig(process="poisson", rate=4), seed=0, n_requests=20000)
    gaps = np.diff([0.0, *schedule.times_s])
    assert gaps.mean() == pytest.approx(0.25, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)  # CV of an exponential


@pytest.mark.parametrize("burstiness", [0.25, 4.0])
def test_gamma_keeps_the_mean_gap_and_sets_its_cv_to_one_over_root_burstiness(
    burstiness: float,
) -> None:
    arrival = ArrivalConfig(process="gamma", rate=2, burstiness=burstiness)
    schedule = arrival_schedule(arrival, seed=0, n_requests=20000)
    gaps = np.diff([0.0, *schedule.times_s])
    assert gaps.mean() == pytest.approx(0.5, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1 / np.sqrt(burstiness), rel=0.06)


def test_n_requests_gives_that_many_and_a_period_ending_at_the_last() -> None:
    schedule = arrival_schedule(ArrivalConfig(process="poisson", rate=2), seed=1, n_requests=7)
    assert len(schedule.times_s) == 7
    assert schedule.period_s == schedule.times_s[-1]


def test_an_absurd_schedule_is_refused_before_it_is_drawn() -> None:
    with pytest.raises(ConfigError, match="more than"):
        arrival_schedule(ArrivalConfig(process="constant", rate=100_000), seed=0, duration_s=86_400)
