"""A whole experiment measured on a simulated NVIDIA GPU (the fake engine does the "work")."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from llenergymeasure import load_result, run_experiment
from llenergymeasure.cli.render import result_table
from llenergymeasure.energy.nvml import NvmlSampler, NvmlTelemetry
from llenergymeasure.energy.process import ProcessTelemetry
from llenergymeasure.testing.simulated_nvml import SimulatedGpu, SimulatedNvml

SW_THERMAL = 0x20


@pytest.fixture
def gpu() -> SimulatedNvml:
    # 150 W while "busy"; thermal throttling reported from t >= 0 s of the device clock.
    return SimulatedNvml(
        [
            SimulatedGpu(
                "NVIDIA H200",
                "GPU-aaa",
                power_w=150.0,
                throttle_reasons=SW_THERMAL,
                temperature_c=lambda t: 60.0 + t,
                # sensors published continuously: this test is about the plumbing, not the
                # 100 ms counter steps (tests/energy/test_nvml_h200.py has those)
                update_period_s=None,
            )
        ],
        call_latency_s=0.0,
    )


def test_energy_power_trace_and_throttling_on_a_simulated_gpu(
    gpu: SimulatedNvml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_CARBON_INTENSITY", "400")
    config = {
        "engine": "fake",
        "fake": {"token_latency_ms": 10, "batch_size": 2},
        "task": {"dataset": {"n_prompts": 4}, "max_output_tokens": 25},
        "measurement": {
            "warmup": {"n_warmup": 1},
            "baseline": {"duration_s": 0.5, "strategy": "fresh"},
            "sample_interval_ms": 20,
        },
    }
    result = run_experiment(
        config,
        sampler=NvmlSampler(["cuda:0"], nvml=gpu, environ={}),
        telemetry=[NvmlTelemetry(["cuda:0"], nvml=gpu, environ={}), ProcessTelemetry()],
        output_dir=tmp_path,
    )
    energy = result.energy
    (domain,) = energy.domains
    assert (domain.domain, domain.method, domain.source) == ("gpu:0", "counter", "nvml")
    # ground truth: 150 W over the sampler's window (a little longer than the timed window)
    assert energy.total_j == pytest.approx(150.0 * result.window.duration_s, rel=0.05)
    assert energy.baseline is not None
    assert energy.baseline.power_w == pytest.approx(150.0, rel=0.01)
    assert energy.adjusted_j is not None and energy.adjusted_j < 0.1 * energy.total_j
    assert energy.co2_g == pytest.approx(energy.total_j / 3.6e6 * 400.0)
    assert energy.carbon_intensity_g_per_kwh == 400.0
    (power,) = result.power.devices
    assert power.device == "gpu:0"
    assert power.mean_w == pytest.approx(150.0)
    assert result.power.peak_w == pytest.approx(150.0)
    (thermal,) = result.thermal
    assert thermal.throttled_s is not None and thermal.throttled_s > 0
    assert thermal.reasons == ("sw_thermal_slowdown",)
    codes = {w.code for w in result.warnings}
    assert {"throttling", "high_baseline", "short_window"} <= codes
    assert result.trace is not None and result.trace.file == "timeseries.parquet"
    assert result.trace.window_start_s is not None and result.trace.window_end_s is not None
    table = _text(result_table(result))
    assert "on gpu:0 (counter, high confidence, sampler `nvml`)" in table
    assert "idle 150.0 W with the engine loaded" in table
    assert "throttled" in table and "sw_thermal_slowdown" in table
    assert "at 400 g/kWh" in table
    (run_dir,) = tmp_path.iterdir()
    (folder,) = run_dir.iterdir()
    loaded = load_result(folder)
    gpu_rows = [r for r in loaded.timeseries if r["device"] == "gpu:0"]
    assert gpu_rows and all(r["power_w"] == pytest.approx(150.0) for r in gpu_rows)
    assert {r["throttle_reasons"] for r in gpu_rows} == {SW_THERMAL}


def _text(table: Table) -> str:
    console = Console(record=True, width=240)
    console.print(table)
    return console.export_text()


def test_compute_and_phase_energy_of_a_run_on_a_simulated_h200(tmp_path: Path) -> None:
    from test_flops import SMOLLM2_135M

    from llenergymeasure.testing.fake_engine import FakeEngine

    # sensors published continuously: a 0.3 s window on 100 ms counter steps is good to
    # ~30 %, too coarse for the proportional split checked below
    gpu = SimulatedNvml(
        [SimulatedGpu("NVIDIA H200", "GPU-bbb", power_w=200.0, update_period_s=None)]
    )
    result = run_experiment(
        {
            "engine": "fake",
            "fake": {"prefill_latency_ms": 40, "token_latency_ms": 10, "batch_size": 2},
            "task": {"dataset": {"n_prompts": 4}, "max_output_tokens": 12},
            "measurement": {
                "warmup": {"n_warmup": 1},
                "baseline": {"enabled": False},
                "sample_interval_ms": 10,
            },
        },
        engine=FakeEngine(shape=SMOLLM2_135M, device_names=("NVIDIA H200",)),
        sampler=NvmlSampler(["cuda:0"], nvml=gpu, environ={}),
        telemetry=[NvmlTelemetry(["cuda:0"], nvml=gpu, environ={}), ProcessTelemetry()],
        output_dir=tmp_path,
    )
    compute = result.compute
    assert compute is not None and compute.params.total == 134_479_872
    assert compute.peak is not None and compute.peak.device_name == "NVIDIA H200"
    # the fake model runs float32: the H200's plain FP32 peak, 67 TFLOP/s
    assert compute.peak.dense_flops_per_s == 67e12
    assert compute.mfu == pytest.approx(compute.total_flops / result.window.duration_s / 67e12)
    assert compute.decode.duration_s is not None and compute.decode.duration_s > 0.2
    assert compute.mbu is not None and compute.mbu > 0
    assert result.flops is not None and result.flops.total == compute.total_flops
    split = result.phase_energy
    assert split is not None and split.method == "attributed"
    assert split.energy_method == "counter" and split.domains == ("gpu:0",)
    assert split.trace_interval_ms == 10
    parts = (split.prefill.energy_j or 0) + (split.decode.energy_j or 0) + (split.other_j or 0)
    assert parts == pytest.approx(result.energy.total_j)
    # constant power: each phase's share is its share of the window's time
    assert split.prefill.energy_j == pytest.approx(200.0 * split.prefill.duration_s, rel=0.15)
    assert split.decode.energy_j == pytest.approx(200.0 * split.decode.duration_s, rel=0.15)
    table = _text(result_table(result))
    assert f"{100 * compute.mfu:,.2f} % / {100 * compute.mbu:,.2f} %" in table
    assert "(attributed, counter; trace every 10 ms)" in table
    (run_dir,) = tmp_path.iterdir()
    (folder,) = run_dir.iterdir()
    assert load_result(folder).phase_energy == split


def _repeating_window(**measurement: object) -> dict[str, object]:
    """The fake engine at 2 batches of 2 prompts x 10 tokens (20 ms prefill, 5 ms a token),
    no warm-up or baseline, with ``measurement`` settings (``min_window_s`` to repeat it)."""
    return {
        "engine": "fake",
        "fake": {"prefill_latency_ms": 20, "token_latency_ms": 5, "batch_size": 2},
        "task": {"dataset": {"n_prompts": 4}, "max_output_tokens": 10},
        "measurement": {"warmup": {"enabled": False}, "baseline": {"enabled": False}} | measurement,
    }


def test_a_window_of_several_passes_keeps_its_step_times_for_compute_and_the_phase_split() -> None:
    from test_flops import SMOLLM2_135M

    from llenergymeasure.testing.h200 import h200_nvml
    from llenergymeasure.testing.simulated_gpu_engine import SimulatedGpuEngine

    nvml = h200_nvml(call_latency_s=0.0)
    # one pass is ~0.14 s: a 0.5 s minimum makes the window repeat the prompt set
    config = _repeating_window(min_window_s=0.5, sample_interval_ms=20)
    result = run_experiment(config, engine=SimulatedGpuEngine(nvml, shape=SMOLLM2_135M), nvml=nvml)
    n_passes = result.window.n_passes
    assert n_passes >= 2
    compute = result.compute
    assert compute is not None and compute.peak is not None
    assert compute.peak.device_name == "NVIDIA H200"
    # every pass's 2 batches x 9 decode steps x 5 ms, and 2 x 20 ms prefills (sleeps at least)
    assert compute.decode.duration_s is not None
    assert compute.decode.duration_s >= n_passes * 2 * 9 * 0.005
    assert compute.prefill.duration_s is not None
    assert compute.prefill.duration_s >= n_passes * 2 * 0.020
    assert compute.decode.duration_s + compute.prefill.duration_s <= result.window.duration_s
    assert compute.decode.n_tokens == 4 * n_passes * 9
    assert compute.mbu is not None and 0 < compute.mbu < 1
    assert compute.decode.flops_per_s == pytest.approx(
        compute.decode.flops / compute.decode.duration_s
    )
    split = result.phase_energy
    assert split is not None and split.energy_method == "counter"
    assert split.power_source == "instant"
    assert split.prefill.n_intervals == split.decode.n_intervals == 2 * n_passes
    assert split.decode.duration_s == pytest.approx(compute.decode.duration_s)
    assert split.prefill.duration_s == pytest.approx(compute.prefill.duration_s)
    assert split.decode.n_tokens == compute.decode.n_tokens
    parts = (split.prefill.energy_j or 0) + (split.decode.energy_j or 0) + (split.other_j or 0)
    assert parts == pytest.approx(result.energy.total_j)
    assert (split.decode.energy_j or 0) > (split.prefill.energy_j or 0) > 0


def test_a_gpu_without_instant_power_gets_its_phase_times_and_no_energy_split() -> None:
    from llenergymeasure.testing.h200 import h200_nvml
    from llenergymeasure.testing.simulated_gpu_engine import SimulatedGpuEngine

    # no POWER_INSTANT field: the trace reads nvmlDeviceGetPowerUsage, a 1 s average
    nvml = h200_nvml(call_latency_s=0.0, gpu={"has_power_fields": False})
    result = run_experiment(
        _repeating_window(min_window_s=0.3),
        engine=SimulatedGpuEngine(nvml),
        nvml=nvml,
    )
    split = result.phase_energy
    assert split is not None and split.power_source == "averaged"
    assert split.prefill.energy_j is None and split.decode.energy_j is None
    assert split.decode.duration_s > 0 and split.decode.n_tokens == 4 * result.window.n_passes * 9
    assert "1 s moving average" in split.note
    table = _text(result_table(result))
    assert "n/a (the GPU's power reads a 1 s average" in table
