"""The CPU estimate and the "none" sampler, on injected CPU time and clock."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.estimate import EstimateSampler, NoEnergySampler, process_cpu_time_s
from llenergymeasure.errors import EnergyError


class Script:
    """Returns the scripted values in order, one per call."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def __call__(self) -> float:
        return self.values.pop(0)


def test_energy_is_cpu_seconds_times_watts_per_thread() -> None:
    sampler = EstimateSampler(
        3.125, "built-in table: X", cpu_times=Script(100.0, 112.0), clock=Script(5.0, 9.0)
    )
    assert isinstance(sampler, EnergySampler)
    sampler.begin()
    reading = sampler.end()

    assert reading.sampler == "estimate"
    assert len(reading.domains) == 1
    (cpu,) = reading.domains
    assert cpu.domain == "cpu:0"
    assert cpu.energy_j == pytest.approx(12.0 * 3.125)
    assert cpu.method == "estimated"
    assert cpu.source == "estimate"
    assert reading.estimated_j == pytest.approx(37.5)
    assert reading.measured_j is None  # an estimate is never a measured figure
    assert reading.method is None
    assert reading.confidence == "low"
    assert reading.n_samples == 0
    assert reading.duration_s == pytest.approx(4.0)
    assert reading.details == {
        "model": "process CPU time x TDP per hardware thread",
        "watts_per_thread": 3.125,
        "tdp_source": "built-in table: X",
        "cpu_time_s": pytest.approx(12.0),
        "cpu_share": pytest.approx(3.0),
    }
    assert reading.warnings == ()


def test_no_dram_domain_is_made_up() -> None:
    sampler = EstimateSampler(
        10.0, "default per-thread", cpu_times=Script(0, 1), clock=Script(0, 1)
    )
    sampler.begin()
    assert [d.domain for d in sampler.end().domains] == ["cpu:0"]


def test_cpu_time_that_did_not_advance_is_none_not_zero() -> None:
    sampler = EstimateSampler(
        10.0, "default per-thread", cpu_times=Script(7.0, 7.0), clock=Script(0, 2)
    )
    sampler.begin()
    reading = sampler.end()
    assert reading.domains[0].energy_j is None
    assert reading.estimated_j is None and reading.measured_j is None
    assert reading.method is None
    assert reading.warnings and "did not advance" in reading.warnings[0]


def test_zero_duration_leaves_cpu_share_unknown() -> None:
    sampler = EstimateSampler(10.0, "x", cpu_times=Script(0.0, 0.5), clock=Script(3.0, 3.0))
    sampler.begin()
    assert sampler.end().details["cpu_share"] is None


def test_end_without_begin_raises() -> None:
    sampler = EstimateSampler(10.0, "x", cpu_times=Script(), clock=Script())
    with pytest.raises(EnergyError, match="without begin"):
        sampler.end()


def test_a_window_is_closed_once() -> None:
    sampler = EstimateSampler(10.0, "x", cpu_times=Script(0, 1), clock=Script(0, 1))
    sampler.begin()
    sampler.end()
    with pytest.raises(EnergyError):
        sampler.end()


@pytest.mark.parametrize("watts", [0.0, -1.0, float("nan"), float("inf")])
def test_watts_per_thread_must_be_positive(watts: float) -> None:
    with pytest.raises(EnergyError):
        EstimateSampler(watts, "x")


def test_probe_is_always_available() -> None:
    availability = EstimateSampler(10.0, "x").probe()
    assert availability.available
    assert availability.reason == "process CPU time is always readable"


def test_default_cpu_time_counts_this_process() -> None:
    before = process_cpu_time_s()
    total = 0
    for i in range(3_000_000):  # busy work so the tick-based counter advances
        total += i
    assert total > 0
    assert process_cpu_time_s() > before


def test_default_cpu_time_counts_a_live_child_process() -> None:
    """Engines such as vLLM run the model in helper processes: their CPU time counts."""
    before = process_cpu_time_s()
    burn = "import time\nend = time.process_time() + 1.0\nwhile time.process_time() < end: pass\n"
    child = subprocess.Popen([sys.executable, "-c", burn + "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            times = psutil.Process(child.pid).cpu_times()
            if times.user + times.system >= 0.95:
                break
            time.sleep(0.05)
        # The child is still alive (sleeping): only a descendant-aware count sees its second.
        assert process_cpu_time_s() - before >= 0.9
        # Another process's tree, as a server's is read: the child's second, not ours.
        assert 0.9 <= process_cpu_time_s(child.pid) < process_cpu_time_s()
    finally:
        child.kill()
        child.wait()
    assert process_cpu_time_s(child.pid) == 0.0  # gone: nothing left to read


def test_real_seams_give_a_positive_estimate() -> None:
    sampler = EstimateSampler(10.0, "default per-thread")
    sampler.begin()
    total = 0
    for i in range(3_000_000):
        total += i
    reading = sampler.end()
    assert reading.duration_s > 0
    assert reading.estimated_j is not None and reading.estimated_j > 0


def test_none_sampler_has_no_domains_and_no_total() -> None:
    sampler = NoEnergySampler(clock=Script(1.0, 3.5))
    assert isinstance(sampler, EnergySampler)
    assert sampler.name == "none"
    assert sampler.probe().available
    sampler.begin()
    reading = sampler.end()
    assert reading.sampler == "none"
    assert reading.domains == ()
    assert reading.estimated_j is None and reading.measured_j is None
    assert reading.method is None
    assert reading.duration_s == pytest.approx(2.5)
    assert reading.details == {
        "reason": "energy measurement disabled (measurement.energy_sampler: none)"
    }


def test_none_sampler_end_without_begin_raises() -> None:
    with pytest.raises(EnergyError):
        NoEnergySampler().end()
