"""The NVML sampler and telemetry source on simulated GPUs with known ground truth.

Power samples are driven by hand (``poll_interval_s=None`` + ``sample_power()``) at
known clock times, except in the tests of the poller thread itself.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.energy.base import EnergyReading, EnergySampler
from llenergymeasure.energy.nvml import (
    PYNVML_MISSING,
    NvmlSampler,
    NvmlTelemetry,
    gpu_indices_in_scope,
)
from llenergymeasure.energy.telemetry import TelemetrySource
from llenergymeasure.errors import EnergyError
from llenergymeasure.testing.simulated_nvml import (
    ManualClock,
    NVMLError_DriverNotLoaded,
    NVMLError_NotSupported,
    NVMLError_Unknown,
    SimulatedGpu,
    SimulatedNvml,
)

UUIDS = (
    "GPU-aaaaaaaa-0000-0000-0000-000000000000",
    "GPU-bbbbbbbb-1111-1111-1111-111111111111",
    "GPU-cccccccc-2222-2222-2222-222222222222",
    "GPU-cd000000-3333-3333-3333-333333333333",
)


CONTINUOUS: dict[str, Any] = {"update_period_s": None}


def ramp_w(t: float) -> float:
    """100 W rising to 300 W over 10 s: 2,000 J over the first 10 s."""
    return 100.0 + 20.0 * min(t, 10.0)


def gpus(*power: Any, **common: Any) -> list[SimulatedGpu]:
    """GPUs whose sensors publish continuously: the sampler's arithmetic, exactly."""
    return [
        SimulatedGpu("NVIDIA H100 80GB HBM3", UUIDS[i], power_w=p, **{**CONTINUOUS, **common})
        for i, p in enumerate(power)
    ]


def messages(reading: EnergyReading) -> list[str]:
    return [w if isinstance(w, str) else w.message for w in reading.warnings]


def manual_sampler(
    simulated: Sequence[SimulatedGpu],
    devices: Sequence[str] = ("cuda:0",),
    environ: Mapping[str, str] | None = None,
) -> tuple[NvmlSampler, SimulatedNvml, ManualClock]:
    clock = ManualClock()
    nvml = SimulatedNvml(simulated, clock=clock, call_latency_s=0.0)
    sampler = NvmlSampler(
        devices, nvml=nvml, environ=environ or {}, clock=clock, poll_interval_s=None
    )
    return sampler, nvml, clock


def run_window(
    sampler: NvmlSampler, clock: ManualClock, seconds: float, step_s: float = 0.1
) -> EnergyReading:
    """begin, a power sample every ``step_s`` of the manual clock, end at ``seconds``."""
    start_s = clock()
    sampler.begin()
    n_steps = round(seconds / step_s)
    for k in range(1, n_steps):
        clock.set(start_s + k * step_s)
        sampler.sample_power()
    clock.set(start_s + seconds)
    return sampler.end()


def device(reading: EnergyReading, domain: str) -> dict[str, Any]:
    details: dict[str, Any] = reading.details["devices"][domain]
    return details


# --- energy -----------------------------------------------------------------------------


def test_two_gpus_at_150_w_for_12_s_read_3600_j_by_counter() -> None:
    sampler, nvml, clock = manual_sampler(gpus(150.0, 150.0), devices=["cuda:0", "cuda:1"])
    assert isinstance(sampler, EnergySampler)
    assert sampler.needs_baseline is True
    reading = run_window(sampler, clock, 12.0)

    assert reading.sampler == "nvml"
    assert [d.domain for d in reading.domains] == ["gpu:0", "gpu:1"]
    assert all(d.method == "counter" and d.source == "nvml" for d in reading.domains)
    assert reading.measured_j == pytest.approx(3600.0, rel=0.005)
    for domain in reading.domains:
        assert domain.energy_j == pytest.approx(1800.0, rel=0.005)
    assert reading.method == "counter"
    assert reading.confidence == "high"
    assert reading.duration_s == pytest.approx(12.0)
    assert reading.warnings == ()
    assert reading.details["partial"] is False
    first = device(reading, "gpu:0")
    assert first["uuid"] == UUIDS[0]
    assert first["name"] == "NVIDIA H100 80GB HBM3"
    assert first["counter_j"] == pytest.approx(1800.0, rel=0.005)
    assert first["integrated_j"] == pytest.approx(1800.0, rel=0.005)
    assert abs(first["gap_pct"]) < 0.5
    assert first["n_power_samples"] == 121  # begin, 119 in between, end
    assert device(reading, "gpu:1")["uuid"] == UUIDS[1]
    assert reading.n_samples == 121
    assert nvml.init_count == 0  # end() shut NVML down
    json.dumps(reading.details)  # the details go into result files


def test_ramp_matches_the_analytic_integral_by_counter_and_by_integration() -> None:
    sampler, _, clock = manual_sampler(gpus(ramp_w))
    reading = run_window(sampler, clock, 10.0)

    (gpu0,) = reading.domains
    assert gpu0.method == "counter"
    assert gpu0.energy_j == pytest.approx(2000.0, rel=0.005)
    details = device(reading, "gpu:0")
    assert details["counter_j"] == pytest.approx(2000.0, rel=0.005)
    assert details["integrated_j"] == pytest.approx(2000.0, rel=0.005)
    assert details["gap_pct"] == pytest.approx(0.0, abs=0.5)


def test_integration_is_a_trapezoid_over_the_samples_taken() -> None:
    # A step from 100 W to 300 W at 2 s, sampled only at 0 s and 10 s: the trapezoid
    # sees (100 + 300) / 2 W for 10 s = 2,000 J; the counter the truth, 2,600 J.
    sampler, _, clock = manual_sampler(gpus(lambda t: 100.0 if t < 2.0 else 300.0))
    sampler.begin()
    clock.set(10.0)
    reading = sampler.end()
    details = device(reading, "gpu:0")
    assert details["integrated_j"] == pytest.approx((100.0 + 300.0) / 2 * 10.0)
    assert details["counter_j"] == pytest.approx(100.0 * 2 + 300.0 * 8, rel=1e-4)
    assert details["gap_pct"] == pytest.approx(100 * (2000.0 - 2600.0) / 2600.0, abs=0.01)
    assert reading.domains[0].energy_j == pytest.approx(2600.0, rel=1e-4)
    assert reading.n_samples == 2


def test_gpu_without_counter_falls_back_to_integrated_power() -> None:
    sampler, _, clock = manual_sampler(gpus(ramp_w, has_energy_counter=False))
    reading = run_window(sampler, clock, 10.0)

    (gpu0,) = reading.domains
    assert gpu0.method == "integrated"
    assert gpu0.energy_j == pytest.approx(2000.0, rel=0.005)
    assert reading.method == "integrated"
    assert reading.confidence == "medium"
    details = device(reading, "gpu:0")
    assert details["counter_j"] is None
    assert details["gap_pct"] is None
    assert details["partial"] is False
    assert reading.warnings == ()


def test_mixed_gpus_report_per_domain_methods() -> None:
    simulated = [
        SimulatedGpu("NVIDIA A100", UUIDS[0], power_w=200.0, **CONTINUOUS),
        SimulatedGpu(
            "NVIDIA A100", UUIDS[1], power_w=ramp_w, has_energy_counter=False, **CONTINUOUS
        ),
    ]
    sampler, _, clock = manual_sampler(simulated, devices=["cuda:0", "cuda:1"])
    reading = run_window(sampler, clock, 10.0)

    methods = {d.domain: d.method for d in reading.domains}
    assert methods == {"gpu:0": "counter", "gpu:1": "integrated"}
    assert reading.domains[0].energy_j == pytest.approx(2000.0, rel=0.005)
    assert reading.domains[1].energy_j == pytest.approx(2000.0, rel=0.005)
    assert reading.method == "integrated"
    assert reading.confidence == "medium"


def test_counter_origin_does_not_matter_only_the_delta() -> None:
    simulated = [
        SimulatedGpu(
            "H100", UUIDS[0], power_w=150.0, energy_counter_start_mj=123_456_789_000, **CONTINUOUS
        )
    ]
    sampler, _, clock = manual_sampler(simulated)
    clock.set(30.0)  # the window starts late in the script
    reading = run_window(sampler, clock, 4.0)
    assert reading.domains[0].energy_j == pytest.approx(600.0, rel=0.005)


def test_gpu_lost_mid_window_gives_partial_figure_and_warning() -> None:
    simulated = gpus(150.0, 150.0)
    simulated[1] = SimulatedGpu(
        "NVIDIA H100 80GB HBM3", UUIDS[1], power_w=150.0, fail_after_s=5.0, **CONTINUOUS
    )
    sampler, nvml, clock = manual_sampler(simulated, devices=["cuda:0", "cuda:1"])
    started = time.monotonic()
    reading = run_window(sampler, clock, 10.0, step_s=0.5)
    assert time.monotonic() - started < 2.0

    healthy, lost = reading.domains
    assert healthy.method == "counter"
    assert healthy.energy_j == pytest.approx(1500.0, rel=0.005)
    # answered up to the sample at 4.5 s: 150 W x 4.5 s integrated so far
    assert lost.method == "integrated"
    assert lost.energy_j == pytest.approx(675.0, rel=0.005)
    assert reading.confidence == "low"
    assert reading.details["partial"] is True
    lost_details = device(reading, "gpu:1")
    assert lost_details["partial"] is True
    assert lost_details["n_errors"] >= 11  # every poll from 5 s on, and the counter at the end
    assert "GPU is lost" in lost_details["errors"][0]
    (warning,) = messages(reading)
    assert "partial" in warning
    assert "gpu:1" in warning
    assert UUIDS[1] in warning
    assert "GPU is lost" in warning
    assert nvml.init_count == 0


def test_gpu_lost_before_any_second_sample_has_no_figure() -> None:
    simulated = [SimulatedGpu("P100", UUIDS[0], has_energy_counter=False, fail_after_s=0.05)]
    sampler, _, clock = manual_sampler(simulated)
    reading = run_window(sampler, clock, 1.0, step_s=0.1)
    assert reading.domains[0].energy_j is None
    assert reading.measured_j is None
    assert reading.confidence == "low"
    assert "partial" in messages(reading)[0]
    assert "no figure" in messages(reading)[0]


class CounterFailsAfter:
    """An nvml module whose energy counter errors from script time ``after_s`` on."""

    def __init__(self, inner: SimulatedNvml, after_s: float) -> None:
        self._inner = inner
        self._after_s = after_s

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:  # noqa: N802
        if self._inner.now_s() >= self._after_s:
            raise NVMLError_Unknown()
        return self._inner.nvmlDeviceGetTotalEnergyConsumption(handle)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_counter_failing_at_the_end_falls_back_to_the_full_power_integral() -> None:
    clock = ManualClock()
    inner = SimulatedNvml(gpus(ramp_w), clock=clock, call_latency_s=0.0)
    nvml = CounterFailsAfter(inner, after_s=9.0)
    sampler = NvmlSampler(nvml=nvml, environ={}, clock=clock, poll_interval_s=None)
    reading = run_window(sampler, clock, 10.0)

    (gpu0,) = reading.domains
    assert gpu0.method == "integrated"
    assert gpu0.energy_j == pytest.approx(2000.0, rel=0.005)
    assert reading.confidence == "medium"
    assert reading.details["partial"] is False  # the power trace covers the whole window
    (warning,) = messages(reading)
    assert "energy counter could not be read" in warning
    assert "Unknown Error" in warning
    assert inner.init_count == 0


def test_gpu_without_counter_or_power_readings_has_no_figure_and_says_why() -> None:
    clock = ManualClock()
    inner = SimulatedNvml(gpus(100.0, has_energy_counter=False), clock=clock, call_latency_s=0.0)

    class NoPower(CounterFailsAfter):
        def nvmlDeviceGetPowerUsage(self, handle: object) -> int:  # noqa: N802
            raise NVMLError_NotSupported()

        def nvmlDeviceGetFieldValues(self, handle: object, ids: object) -> list[Any]:  # noqa: N802
            raise NVMLError_NotSupported()

    sampler = NvmlSampler(
        nvml=NoPower(inner, after_s=math.inf), environ={}, clock=clock, poll_interval_s=None
    )
    reading = run_window(sampler, clock, 2.0)
    assert reading.domains[0].energy_j is None
    assert reading.measured_j is None
    assert reading.confidence == "low"
    (warning,) = messages(reading)
    assert "neither an energy counter nor power readings" in warning
    assert "Not Supported" in warning


def test_poller_thread_samples_and_stops_even_when_a_gpu_is_lost() -> None:
    clock = ManualClock()
    simulated = [
        SimulatedGpu("H100", UUIDS[0], power_w=150.0, **CONTINUOUS),
        SimulatedGpu("H100", UUIDS[1], power_w=150.0, fail_after_s=5.0, **CONTINUOUS),
    ]
    nvml = SimulatedNvml(simulated, clock=clock, call_latency_s=0.0)
    sampler = NvmlSampler(
        ["cuda:0", "cuda:1"], nvml=nvml, environ={}, clock=clock, poll_interval_s=0.005
    )
    sampler.begin()
    for k in range(1, 21):  # about 0.2 s of real time over 10 s of script
        clock.set(k * 0.5)
        time.sleep(0.01)
    started = time.monotonic()
    reading = sampler.end()
    assert time.monotonic() - started < 2.0

    assert not any(t.name == "llem-nvml-power" for t in threading.enumerate())
    assert reading.n_samples >= 5  # begin, end and the poller's
    assert device(reading, "gpu:0")["n_power_samples"] >= 5
    assert reading.domains[0].method == "counter"
    assert reading.domains[0].energy_j == pytest.approx(1500.0, rel=0.005)
    assert reading.details["partial"] is True
    assert any("partial" in w and "gpu:1" in w for w in messages(reading))
    assert nvml.init_count == 0


def test_init_failure_at_begin_is_an_energy_error_from_the_nvml_error() -> None:
    nvml = SimulatedNvml([], clock=ManualClock(), init_error=NVMLError_DriverNotLoaded)
    sampler = NvmlSampler(nvml=nvml, environ={}, poll_interval_s=None)
    with pytest.raises(EnergyError, match="Driver Not Loaded") as caught:
        sampler.begin()
    assert isinstance(caught.value.__cause__, NVMLError_DriverNotLoaded)


def test_begin_without_gpu_in_scope_fails_and_shuts_nvml_down() -> None:
    sampler, nvml, _ = manual_sampler(gpus(100.0), devices=["cpu"])
    with pytest.raises(EnergyError, match="no NVIDIA GPU in scope"):
        sampler.begin()
    assert nvml.init_count == 0


def test_window_misuse_is_an_energy_error() -> None:
    sampler, _, _ = manual_sampler(gpus(100.0))
    with pytest.raises(EnergyError, match="without begin"):
        sampler.end()
    with pytest.raises(EnergyError, match="outside a window"):
        sampler.sample_power()
    sampler.begin()
    with pytest.raises(EnergyError, match="twice"):
        sampler.begin()
    sampler.end()
    with pytest.raises(EnergyError, match="without begin"):
        sampler.end()


def test_poll_interval_must_be_positive() -> None:
    with pytest.raises(EnergyError, match="poll_interval_s"):
        NvmlSampler(poll_interval_s=0.0)


def test_sampler_measures_the_gpu_cuda_visible_devices_points_at() -> None:
    simulated = gpus(100.0, 200.0, 300.0)
    sampler, _, clock = manual_sampler(
        simulated, devices=["cuda:0"], environ={"CUDA_VISIBLE_DEVICES": "2"}
    )
    reading = run_window(sampler, clock, 2.0)
    (domain,) = reading.domains
    assert domain.domain == "gpu:2"
    assert domain.energy_j == pytest.approx(600.0, rel=0.005)
    details = device(reading, "gpu:2")
    assert details["uuid"] == UUIDS[2]
    assert details["cuda_device"] == "cuda:0"
    assert reading.details["cuda_visible_devices"] == "2"


def test_mixed_gpu_models_without_pci_bus_order_warn_about_numbering() -> None:
    simulated = [SimulatedGpu("NVIDIA A100", UUIDS[0]), SimulatedGpu("NVIDIA T4", UUIDS[1])]
    sampler, _, clock = manual_sampler(simulated)
    reading = run_window(sampler, clock, 1.0)
    assert any("CUDA_DEVICE_ORDER=PCI_BUS_ID" in w for w in reading.warnings)

    ordered, _, clock = manual_sampler(simulated, environ={"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert run_window(ordered, clock, 1.0).warnings == ()


# --- probe ------------------------------------------------------------------------------


def test_probe_is_available_with_a_gpu_and_says_which_method() -> None:
    simulated = [
        SimulatedGpu("H100", UUIDS[0]),
        SimulatedGpu("P100", UUIDS[1], has_energy_counter=False),
    ]
    sampler, nvml, _ = manual_sampler(simulated, devices=["cuda:0", "cuda:1"])
    availability = sampler.probe()
    assert availability.available
    assert "counter on gpu:0" in availability.reason
    assert "integrated power on gpu:1" in availability.reason
    assert availability.version == "550.54.15"
    assert nvml.init_count == 0


def test_probe_without_pynvml_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    availability = NvmlSampler().probe()
    assert not availability.available
    assert availability.reason == PYNVML_MISSING
    assert "pip install nvidia-ml-py" in availability.reason


@pytest.mark.parametrize(
    ("simulated", "devices", "environ", "reason"),
    [
        ([], ["cuda:0"], {}, "no NVIDIA GPU"),
        (gpus(100.0), ["cpu"], {}, "no NVIDIA GPU in scope"),
        (gpus(100.0), ["cuda:0"], {"CUDA_VISIBLE_DEVICES": ""}, "but this process sees 0"),
        (gpus(100.0), ["cuda:1"], {}, "asks for visible GPU 1"),
        (gpus(100.0), ["cuda:0"], {"CUDA_VISIBLE_DEVICES": "MIG-1234"}, "MIG instance"),
        (gpus(100.0, fail_after_s=0.0), ["cuda:0"], {}, "GPU is lost"),
    ],
    ids=["no-gpu", "cpu-only", "hidden", "out-of-range", "mig", "gpu-lost"],
)
def test_probe_reasons_when_unavailable(
    simulated: list[SimulatedGpu], devices: list[str], environ: dict[str, str], reason: str
) -> None:
    sampler, nvml, _ = manual_sampler(simulated, devices=devices, environ=environ)
    availability = sampler.probe()
    assert not availability.available
    assert reason in availability.reason
    assert nvml.init_count == 0


def test_probe_reports_an_nvml_init_failure() -> None:
    nvml = SimulatedNvml([], clock=ManualClock(), init_error=NVMLError_DriverNotLoaded)
    availability = NvmlSampler(nvml=nvml, environ={}).probe()
    assert not availability.available
    assert availability.reason == "NVML could not initialise: Driver Not Loaded"


# --- GPUs in scope ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("devices", "visible", "expected"),
    [
        (["cuda:0"], None, [0]),
        (["cuda:0", "cuda:1"], None, [0, 1]),
        (["cuda:0", "cuda:1"], "2,3", [2, 3]),
        (["cuda:1"], "3,1", [1]),
        (["cuda"], "2", [2]),
        (["cpu", "cuda:0", "meta"], None, [0]),
        (["cpu"], None, []),
        (["cuda:0", "cuda:0", "cuda"], None, [0]),
        (["cuda:0", "cuda:1"], "0,2,-1,1", [0, 2]),
        (["cuda:0"], " 3 , 0 ", [3]),
        (["cuda:0"], UUIDS[2], [2]),
        (["cuda:0", "cuda:1"], f"{UUIDS[3]},{UUIDS[1]}", [3, 1]),
        (["cuda:0"], "GPU-bbbb", [1]),
        (["cuda:0"], "aaaaaaaa", [0]),
        (["cuda:0"], "gpu-CCCCCCCC", [2]),
        (["CUDA:1"], "1,0", [0]),
    ],
)
def test_gpu_indices_in_scope(devices: list[str], visible: str | None, expected: list[int]) -> None:
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert gpu_indices_in_scope(devices, environ, UUIDS) == expected


@pytest.mark.parametrize(
    ("devices", "visible", "match"),
    [
        (["cuda:4"], None, "asks for visible GPU 4, but this process sees 4"),
        (["cuda:0"], "", "sees 0"),
        (["cuda:0"], "-1", "sees 0"),
        (["cuda:2"], "0,2,-1,1", "sees 2"),
        (["cuda:0"], "GPU-c", "sees 0"),  # ambiguous prefix: names no GPU
        (["cuda:1"], "1,1", "sees 1"),
        (["cuda:0"], "7", "sees 0"),
        (["cuda:0"], "MIG-GPU-aaaaaaaa/1/0", "MIG instance"),
    ],
)
def test_gpu_indices_in_scope_errors(devices: list[str], visible: str | None, match: str) -> None:
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    with pytest.raises(EnergyError, match=match):
        gpu_indices_in_scope(devices, environ, UUIDS)


# --- telemetry --------------------------------------------------------------------------


class WithoutEventReasons:
    """An nvml module from before the 'clocks event reasons' rename."""

    def __init__(self, inner: SimulatedNvml) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "nvmlDeviceGetCurrentClocksEventReasons":
            raise AttributeError(name)
        return getattr(self._inner, name)


def telemetry_gpus() -> list[SimulatedGpu]:
    return [
        SimulatedGpu(
            "NVIDIA H100",
            UUIDS[0],
            power_w=ramp_w,
            temperature_c=lambda t: 50.0 + t,
            sm_clock_mhz=1755.0,
            utilisation_pct=93.0,
            memory_used_mib=40_960.0,
            throttle_reasons=lambda t: 0x20 | 0x4 if t >= 3.0 else 0,
            **CONTINUOUS,
        ),
        SimulatedGpu("NVIDIA P100", UUIDS[1], power_w=60.0, has_energy_counter=False, **CONTINUOUS),
    ]


def test_telemetry_reads_every_field_per_gpu() -> None:
    clock = ManualClock()
    nvml = SimulatedNvml(telemetry_gpus(), clock=clock, call_latency_s=0.0)
    telemetry = NvmlTelemetry(["cuda:0", "cuda:1"], nvml=nvml, environ={})
    assert isinstance(telemetry, TelemetrySource)
    assert telemetry.name == "nvml"
    assert telemetry.devices() == ["gpu:0", "gpu:1"]

    clock.set(5.0)
    busy, old = telemetry.read()
    assert busy.device == "gpu:0"
    assert busy.power_w == pytest.approx(200.0)
    assert busy.energy_j == pytest.approx(100.0 * 5 + 10.0 * 25, abs=0.002)
    assert busy.temperature_c == 55.0
    assert busy.sm_clock_mhz == 1755.0
    assert busy.utilisation_pct == 93.0
    assert busy.memory_used_mib == pytest.approx(40_960.0)
    assert busy.throttle_reasons == 0x24
    assert old.device == "gpu:1"
    assert old.power_w == pytest.approx(60.0)
    assert old.energy_j is None  # no counter on this GPU
    assert old.throttle_reasons == 0

    telemetry.close()
    telemetry.close()  # closing twice is harmless
    assert nvml.init_count == 0


def test_telemetry_falls_back_to_the_old_throttle_reasons_name() -> None:
    clock = ManualClock()
    inner = SimulatedNvml(telemetry_gpus(), clock=clock, call_latency_s=0.0)
    telemetry = NvmlTelemetry(nvml=WithoutEventReasons(inner), environ={})
    assert telemetry.read()[0].throttle_reasons == 0
    clock.set(3.0)
    (sample,) = telemetry.read()
    assert sample.throttle_reasons == 0x24
    telemetry.close()


def test_telemetry_of_a_lost_gpu_is_none_without_raising() -> None:
    clock = ManualClock()
    simulated = [
        SimulatedGpu("H100", UUIDS[0], power_w=100.0, **CONTINUOUS),
        SimulatedGpu("H100", UUIDS[1], power_w=100.0, fail_after_s=1.0, **CONTINUOUS),
    ]
    nvml = SimulatedNvml(simulated, clock=clock, call_latency_s=0.0)
    telemetry = NvmlTelemetry(["cuda:0", "cuda:1"], nvml=nvml, environ={})
    clock.set(2.0)
    healthy, lost = telemetry.read()
    assert healthy.power_w == pytest.approx(100.0)
    assert lost.device == "gpu:1"
    assert (
        lost.power_w,
        lost.energy_j,
        lost.temperature_c,
        lost.sm_clock_mhz,
        lost.utilisation_pct,
        lost.memory_used_mib,
        lost.throttle_reasons,
    ) == (None, None, None, None, None, None, None)
    telemetry.close()


def test_telemetry_follows_cuda_visible_devices() -> None:
    nvml = SimulatedNvml(gpus(100.0, 100.0, 100.0), clock=ManualClock())
    telemetry = NvmlTelemetry(
        ["cuda:0", "cuda:1"], nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": "2,0"}
    )
    assert telemetry.devices() == ["gpu:2", "gpu:0"]
    telemetry.close()


def test_telemetry_construction_failures_are_energy_errors() -> None:
    broken = SimulatedNvml([], clock=ManualClock(), init_error=NVMLError_DriverNotLoaded)
    with pytest.raises(EnergyError, match="Driver Not Loaded"):
        NvmlTelemetry(nvml=broken, environ={})
    empty = SimulatedNvml([], clock=ManualClock())
    with pytest.raises(EnergyError, match="no NVIDIA GPU"):
        NvmlTelemetry(nvml=empty, environ={})
    assert empty.init_count == 0


# --- import weight ----------------------------------------------------------------------


def test_importing_nvml_modules_does_not_import_pynvml(tmp_path: Path) -> None:
    """A stand-in pynvml on the path would be caught if an import pulled it in."""
    (tmp_path / "pynvml.py").write_text(
        textwrap.dedent(
            """
            import sys
            from llenergymeasure.testing.simulated_nvml import SimulatedGpu, SimulatedNvml
            sys.modules[__name__] = SimulatedNvml([SimulatedGpu("Sim GPU", "GPU-5151")])
            """
        )
    )
    snippet = textwrap.dedent(
        """
        import json, sys
        import llenergymeasure.energy.nvml
        import llenergymeasure.system.gpus
        after_import = "pynvml" in sys.modules
        from llenergymeasure.energy.nvml import NvmlSampler
        from llenergymeasure.system.gpus import list_gpus
        probe = NvmlSampler(environ={}).probe()
        listed, driver, _ = list_gpus()
        print(json.dumps([after_import, probe.available, [g.uuid for g in listed],
                          "pynvml" in sys.modules]))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    after_import, available, uuids, used_later = json.loads(proc.stdout.splitlines()[-1])
    assert after_import is False
    # the control: the default path does import pynvml, lazily, and finds the stand-in
    assert available is True
    assert uuids == ["GPU-5151"]
    assert used_later is True
