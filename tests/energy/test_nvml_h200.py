"""The NVML sampler on the simulated H200: instant power, averaged power only where there is
nothing better, a stalled counter, reason counters, and NVML modules that lack functions."""

from __future__ import annotations

from typing import Any

import pytest

from llenergymeasure.energy.base import EnergyReading, SamplerWarning
from llenergymeasure.energy.nvml import NvmlSampler, NvmlTelemetry
from llenergymeasure.energy.throttle import _counter_doubt
from llenergymeasure.testing.h200 import h200_nvml
from llenergymeasure.testing.simulated_nvml import ManualClock, SimulatedNvml


def window(
    nvml: Any, clock: ManualClock, seconds: float, *, busy_from_s: float = 0.0
) -> EnergyReading:
    """Begin, a power sample every 10 ms of the clock, end; the GPU busy from ``busy_from_s``."""
    sampler = NvmlSampler(nvml=nvml, environ={}, clock=clock, poll_interval_s=None)
    start = clock()
    sampler.begin()
    busy = False
    while clock() < start + seconds:
        clock.set(max(clock(), clock() + 0.010))
        if not busy and clock() >= start + busy_from_s:
            simulation(nvml).set_busy(0, True)
            busy = True
        sampler.sample_power()
    return sampler.end()


def simulation(nvml: Any) -> SimulatedNvml:
    return nvml if isinstance(nvml, SimulatedNvml) else nvml.inner


def loaded_h200(clock: ManualClock, **gpu: Any) -> SimulatedNvml:
    nvml = h200_nvml(clock=clock, gpu=gpu)
    nvml.open_context(0)
    clock.set(5.0)
    return nvml


def test_instant_power_integrates_a_load_step_as_the_counter_does() -> None:
    # the first second of load: on the H200, averaged power integrated to 53 % of the counter
    clock = ManualClock()
    reading = window(loaded_h200(clock), clock, 1.0)
    (gpu,) = reading.domains
    assert (gpu.method, gpu.power_source) == ("counter", "instant")
    assert gpu.energy_j == pytest.approx(685.0, rel=0.1)
    assert gpu.integrated_j == pytest.approx(gpu.energy_j, rel=0.12)
    assert gpu.gap_pct is not None and abs(gpu.gap_pct) < 12


def test_averaged_power_is_used_and_labelled_only_where_the_gpu_has_no_instant_field() -> None:
    clock = ManualClock()
    reading = window(loaded_h200(clock, has_power_fields=False), clock, 1.0)
    (gpu,) = reading.domains
    assert gpu.power_source == "averaged"
    assert gpu.method == "counter"  # the counter is unaffected
    assert gpu.integrated_j is not None and gpu.energy_j is not None
    assert gpu.integrated_j / gpu.energy_j == pytest.approx(0.55, abs=0.1)


def test_a_counter_that_does_not_advance_is_no_reading_and_integration_takes_over() -> None:
    clock = ManualClock()
    nvml = Frozen(loaded_h200(clock))
    reading = window(nvml, clock, 2.0, busy_from_s=0.0)
    (gpu,) = reading.domains
    assert gpu.energy_j is not None and gpu.energy_j > 0
    assert gpu.method == "integrated"
    assert gpu.energy_j == pytest.approx(685.0 * 2.0, rel=0.05)
    (stalled,) = [w for w in reading.warnings if isinstance(w, SamplerWarning)]
    assert stalled.code == "counter_stalled"
    assert "+0.000 J" in stalled.message and "stands in for it" in stalled.message
    assert reading.details["devices"]["gpu:0"]["counter_j"] == 0.0


def test_a_stalled_counter_over_too_few_samples_gives_no_figure_never_zero() -> None:
    clock = ManualClock()
    nvml = Frozen(loaded_h200(clock))
    sampler = NvmlSampler(nvml=nvml, environ={}, clock=clock, poll_interval_s=None)
    sampler.begin()
    clock.advance(0.05)
    reading = sampler.end()
    (gpu,) = reading.domains
    assert gpu.energy_j is None
    assert reading.confidence == "low"
    assert [w.code for w in reading.warnings if isinstance(w, SamplerWarning)] == [
        "counter_stalled"
    ]


def test_reason_counters_give_the_seconds_at_the_power_cap() -> None:
    clock = ManualClock()
    reading = window(loaded_h200(clock), clock, 3.0)
    seconds = reading.details["devices"]["gpu:0"]["clock_event_s"]
    assert seconds["sw_power_cap"] == pytest.approx(3.0, abs=0.05)
    assert seconds["sw_thermal_slowdown"] == 0.0
    assert seconds["hw_power_brake_slowdown"] == 0.0


@pytest.mark.parametrize(("units_per_s", "warned"), [(1.1e9, False), (2.0e9, True)])
def test_the_reason_counter_warning_uses_the_thermal_summarys_bound(
    units_per_s: float, warned: bool
) -> None:
    # 3.3 s in a 3 s window is within the edges' slack that the thermal summary allows,
    # and is used there; 6 s is not, and the summary falls back to the sampled bits
    clock = ManualClock()
    reading = window(loaded_h200(clock, reason_counter_units_per_s=units_per_s), clock, 3.0)
    counted = reading.details["devices"]["gpu:0"]["clock_event_s"]["sw_power_cap"]
    assert counted == pytest.approx(3.0 * units_per_s / 1e9, rel=0.02)
    doubt = _counter_doubt(counted, counted, 3.0)  # what the thermal summary makes of it
    codes = [w.code for w in reading.warnings if isinstance(w, SamplerWarning)]
    assert ("reason_counters" in codes) is warned
    assert (doubt is not None) is warned


@pytest.mark.parametrize(
    ("missing", "method", "power_source", "reasons"),
    [
        ("nvmlDeviceGetTotalEnergyConsumption", "integrated", "instant", True),
        ("nvmlDeviceGetFieldValues", "counter", "averaged", False),
    ],
)
def test_an_nvml_without_a_function_degrades_to_a_labelled_figure(
    missing: str, method: str, power_source: str, reasons: bool
) -> None:
    clock = ManualClock()
    nvml = h200_nvml(clock=clock, omit=[missing])
    nvml.open_context(0)
    clock.set(5.0)
    reading = window(nvml, clock, 2.0)
    (gpu,) = reading.domains
    assert (gpu.method, gpu.power_source) == (method, power_source)
    assert gpu.energy_j == pytest.approx(685.0 * 2.0, rel=0.05)
    assert (reading.details["devices"]["gpu:0"]["clock_event_s"] is not None) is reasons
    telemetry = NvmlTelemetry(nvml=nvml, environ={})
    (sample,) = telemetry.read()
    assert sample.power_w == pytest.approx(685.0, rel=0.01)
    assert (sample.energy_j is None) is (missing == "nvmlDeviceGetTotalEnergyConsumption")
    assert telemetry.power_sources == {"gpu:0": power_source}
    telemetry.close()


def test_probe_says_which_gpus_have_no_instant_power() -> None:
    nvml = h200_nvml(clock=ManualClock(), gpu={"has_power_fields": False})
    availability = NvmlSampler(nvml=nvml, environ={}).probe()
    assert availability.available
    assert "no instant power field on gpu:0" in availability.reason


class Frozen:
    """An NVML whose energy counter never moves (a stalled or reset counter)."""

    def __init__(self, inner: SimulatedNvml) -> None:
        self.inner = inner
        self._value: int | None = None

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:  # noqa: N802
        if self._value is None:
            self._value = self.inner.nvmlDeviceGetTotalEnergyConsumption(handle)  # type: ignore[arg-type]
        return self._value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
