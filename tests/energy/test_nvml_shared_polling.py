"""One thread polls NVML in the engine's process: the trace's, feeding the energy sampler."""

from __future__ import annotations

import threading
import time

import pytest

from h200_run import run_h200
from llenergymeasure.energy.composite import CompositeSampler
from llenergymeasure.energy.estimate import EstimateSampler
from llenergymeasure.energy.nvml import NvmlSampler, NvmlTelemetry
from llenergymeasure.energy.process import ProcessTelemetry
from llenergymeasure.energy.registry import select_sampler, share_nvml_polling
from llenergymeasure.energy.trace import PowerTrace
from llenergymeasure.experiment.reporter import NullReporter, WindowSoFar
from llenergymeasure.testing.h200 import h200_nvml
from llenergymeasure.testing.simulated_nvml import SimulatedGpu, SimulatedNvml

POLLER = "llem-nvml-power"


def _nvml() -> SimulatedNvml:
    return SimulatedNvml(
        [SimulatedGpu("NVIDIA H200", "GPU-aaa", power_w=250.0, update_period_s=None)],
        call_latency_s=0.0,
    )


def _nvml_pollers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == POLLER]


def test_a_fed_sampler_starts_no_poller_and_integrates_the_power_the_trace_read() -> None:
    nvml = _nvml()
    sampler = NvmlSampler(["cuda:0"], nvml=nvml, environ={})
    telemetry = NvmlTelemetry(["cuda:0"], nvml=nvml, environ={})
    share_nvml_polling(CompositeSampler([sampler, EstimateSampler(10.0, "test")]), [telemetry])
    trace = PowerTrace([telemetry, ProcessTelemetry()], interval_ms=20).start()
    try:
        sampler.begin()
        assert _nvml_pollers() == []
        time.sleep(0.5)
        reading = sampler.end()
    finally:
        recorded = trace.stop()
        telemetry.close()
    (domain,) = reading.domains
    assert domain.method == "counter"
    assert reading.details["power_polled_by"] == "the trace"
    assert reading.details["poll_interval_s"] is None
    in_window = [r for r in recorded.samples if r.device == "gpu:0"]
    # the edges' own samples plus the trace's reads inside the window (20 ms apart)
    assert reading.n_samples >= 2 + 15
    assert reading.n_samples <= 2 + len(in_window)
    assert domain.integrated_j == pytest.approx(250.0 * reading.duration_s, rel=0.02)
    assert domain.gap_pct is not None and abs(domain.gap_pct) < 2.0


def test_an_unfed_sampler_polls_in_its_own_thread() -> None:
    nvml = _nvml()
    sampler = NvmlSampler(["cuda:0"], nvml=nvml, environ={})
    sampler.begin()
    try:
        assert _nvml_pollers() == [POLLER]
    finally:
        reading = sampler.end()
    assert reading.details["power_polled_by"] == "this sampler"


def test_without_nvml_telemetry_nothing_is_shared() -> None:
    nvml = _nvml()
    sampler = NvmlSampler(["cuda:0"], nvml=nvml, environ={})
    share_nvml_polling(sampler, [ProcessTelemetry()])
    sampler.begin()
    try:
        assert _nvml_pollers() == [POLLER]
    finally:
        sampler.end()


class _Watching(NullReporter):
    """Notes the NVML pollers alive each time a batch of the window completes."""

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def advance(self, done: int, so_far: WindowSoFar | None = None) -> None:
        self.seen.append(_nvml_pollers())


def test_a_run_on_a_simulated_gpu_has_one_nvml_polling_thread() -> None:
    nvml = h200_nvml(call_latency_s=0.0)
    reporter = _Watching()
    change = {"measurement": {"min_window_s": 0.5, "baseline": {"enabled": False}}}
    result = run_h200(change, nvml=nvml, reporter=reporter)
    assert reporter.seen and all(pollers == [] for pollers in reporter.seen)
    (gpu,) = [d for d in result.energy.domains if d.domain == "gpu:0"]
    assert gpu.method == "counter" and gpu.integrated_j is not None
    # the integral of the trace's power samples still cross-checks the counter
    assert gpu.gap_pct is not None and abs(gpu.gap_pct) < 10.0


def test_the_selection_for_a_gpu_is_fed_by_its_own_trace_source() -> None:
    nvml = _nvml()
    selection = select_sampler(
        "nvml", watts_per_thread=10.0, tdp_source="test", devices=["cuda:0"], nvml=nvml
    )
    share_nvml_polling(selection.sampler, selection.sources)
    selection.sampler.begin()
    try:
        assert _nvml_pollers() == []
    finally:
        selection.sampler.end()
        for source in selection.sources:
            source.close()
