"""Idle baselines: measured from the sampler, and the fresh / cached / validated strategies."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from llenergymeasure.config.models import BaselineConfig
from llenergymeasure.energy.baseline import BaselineCache, measure_baseline, obtain_baseline
from llenergymeasure.testing.fake_sampler import FakeEnergySampler


class Clock:
    """A manual clock that sleeping advances."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _sampler(clock: Clock, watts: float) -> FakeEnergySampler:
    return FakeEnergySampler({"gpu:0": watts, "cpu:0": 20.0, "dram:0": None}, clock=clock)


def test_measure_baseline_is_idle_energy_over_time_per_domain() -> None:
    clock = Clock()
    baseline = measure_baseline(_sampler(clock, 60.0), 30.0, sleep=clock.sleep)
    assert clock.slept == [30.0]
    assert baseline.power_w_by_domain == pytest.approx({"gpu:0": 60.0, "cpu:0": 20.0})
    assert baseline.power_w == pytest.approx(80.0)
    assert baseline.duration_s == pytest.approx(30.0)
    assert baseline.method == "counter"
    assert baseline.std_w is None  # no trace sources: no spread to report


def test_fresh_measures_every_time(tmp_path: Path) -> None:
    clock = Clock()
    config = BaselineConfig(strategy="fresh", duration_s=10)
    cache = BaselineCache(tmp_path)
    for _ in range(2):
        obtain_baseline(_sampler(clock, 60.0), config, key="k", cache=cache, sleep=clock.sleep)
    assert clock.slept == [10.0, 10.0]
    assert not list(tmp_path.iterdir())


def test_cached_reuses_within_ttl_and_remeasures_after(tmp_path: Path) -> None:
    clock = Clock()
    config = BaselineConfig(strategy="cached", duration_s=10, cache_ttl_s=100)
    cache = BaselineCache(tmp_path)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    first = obtain_baseline(
        _sampler(clock, 60.0), config, key="k", cache=cache, sleep=clock.sleep, now=lambda: t0
    )
    later = t0 + timedelta(seconds=50)
    second = obtain_baseline(
        _sampler(clock, 99.0), config, key="k", cache=cache, sleep=clock.sleep, now=lambda: later
    )
    assert clock.slept == [10.0]  # the second run reused the first baseline
    assert second.power_w_by_domain == first.power_w_by_domain
    assert "cached" in second.note
    expired = datetime.now(timezone.utc) + timedelta(seconds=500)
    third = obtain_baseline(
        _sampler(clock, 99.0), config, key="k", cache=cache, sleep=clock.sleep, now=lambda: expired
    )
    assert clock.slept == [10.0, 10.0]
    assert third.power_w_by_domain["gpu:0"] == pytest.approx(99.0)


def test_other_devices_do_not_share_a_cache_entry(tmp_path: Path) -> None:
    clock = Clock()
    config = BaselineConfig(strategy="cached", duration_s=5)
    cache = BaselineCache(tmp_path)
    obtain_baseline(_sampler(clock, 60.0), config, key="a", cache=cache, sleep=clock.sleep)
    obtain_baseline(_sampler(clock, 60.0), config, key="b", cache=cache, sleep=clock.sleep)
    assert clock.slept == [5.0, 5.0]


def test_validated_spot_checks_every_n_runs_and_remeasures_on_drift(tmp_path: Path) -> None:
    clock = Clock()
    config = BaselineConfig(
        strategy="validated", duration_s=30, validate_every=3, spot_check_s=5, drift_threshold=0.1
    )
    cache = BaselineCache(tmp_path)

    def run(watts: float) -> None:
        obtain_baseline(_sampler(clock, watts), config, key="k", cache=cache, sleep=clock.sleep)

    run(60.0)  # measured in full
    run(60.0)  # cached, 1 run since check
    run(60.0)  # cached, 2 runs since check
    assert clock.slept == [30.0]
    run(62.0)  # third run since check: spot check, 2 W of 80 W drift (2.5 %) is kept
    assert clock.slept == [30.0, 5.0]
    run(60.0)
    run(60.0)
    run(120.0)  # spot check: 60 W more of 80 W (75 %): re-measure in full
    assert clock.slept == [30.0, 5.0, 5.0, 30.0]
    hit = cache.load("k")
    assert hit is not None
    assert hit[0].power_w_by_domain["gpu:0"] == pytest.approx(120.0)
    assert "re-measured" in hit[0].note


def test_a_corrupt_cache_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "k.json").write_text("{not json")
    clock = Clock()
    config = BaselineConfig(strategy="cached", duration_s=7)
    obtain_baseline(
        _sampler(clock, 60.0), config, key="k", cache=BaselineCache(tmp_path), sleep=clock.sleep
    )
    assert clock.slept == [7.0]


def test_a_cache_entry_in_another_shape_is_measured_afresh(tmp_path: Path) -> None:
    # a baseline cached by an older llem lacks power_w and age_s: not trusted, re-measured
    old = {
        "baseline": {
            "power_w_by_domain": {"gpu:0": 55.0},
            "duration_s": 10.0,
            "n_samples": 1,
            "std_w": None,
            "method": "counter",
            "strategy": "cached",
            "measured_at": datetime.now(timezone.utc).isoformat(),
            "note": "measured now",
            "state": None,
        },
        "runs_since_check": 0,
    }
    (tmp_path / "k.json").write_text(json.dumps(old), encoding="utf-8")
    cache = BaselineCache(tmp_path)
    assert cache.load("k") is None
    clock = Clock()
    config = BaselineConfig(strategy="cached", duration_s=10)
    fresh = obtain_baseline(_sampler(clock, 60.0), config, key="k", cache=cache, sleep=clock.sleep)
    assert clock.slept == [10.0] and fresh.power_w == pytest.approx(80.0)
    hit = cache.load("k")
    assert hit is not None and hit[0] == fresh  # the entry is rewritten in today's shape
