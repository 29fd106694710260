"""The shipped fake sampler: scripted power x elapsed time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.errors import EnergyError
from llenergymeasure.testing.fake_sampler import FakeEnergySampler


def clock_of(*values: float) -> Callable[[], float]:
    it = iter(values)
    return lambda: next(it)


def test_energy_is_power_times_elapsed_per_domain() -> None:
    sampler = FakeEnergySampler({"gpu:0": 250.0, "cpu:0": 40.0}, clock=clock_of(10.0, 14.0))
    assert isinstance(sampler, EnergySampler)
    sampler.begin()
    reading = sampler.end()
    energies = {d.domain: d.energy_j for d in reading.domains}
    assert energies == {"gpu:0": pytest.approx(1000.0), "cpu:0": pytest.approx(160.0)}
    assert reading.measured_j == pytest.approx(1160.0)
    assert reading.method == "counter"
    assert reading.confidence == "high"
    assert {d.source for d in reading.domains} == {"fake"}
    assert reading.duration_s == pytest.approx(4.0)


def test_method_sets_method_and_confidence() -> None:
    sampler = FakeEnergySampler({"cpu:0": 10.0}, method="estimated", clock=clock_of(0, 1))
    sampler.begin()
    reading = sampler.end()
    assert [d.method for d in reading.domains] == ["estimated"]
    assert reading.method is None  # the weakest *measured* method: there is none
    assert reading.estimated_j == pytest.approx(10.0)
    assert reading.confidence == "low"


def test_a_domain_scripted_as_none_reads_none() -> None:
    sampler = FakeEnergySampler({"gpu:0": 100.0, "dram:0": None}, clock=clock_of(0, 2))
    sampler.begin()
    reading = sampler.end()
    energies = {d.domain: d.energy_j for d in reading.domains}
    assert energies["dram:0"] is None
    assert reading.measured_j == pytest.approx(200.0)


def test_end_without_begin_raises() -> None:
    with pytest.raises(EnergyError):
        FakeEnergySampler({"gpu:0": 1.0}).end()
