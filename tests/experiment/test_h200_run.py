"""Whole experiments on simulated H200s, one test per thing the real H200 showed was wrong.

The numbers are the issue's items: 1 baseline with the engine loaded, 2 measured headline,
3 NVML required on CUDA, 5 minimum window, 6 power cap, 9 baseline cache scope, 11 shared
GPU, 12 device_map auto, 14 nulls, 15 device locks.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from test_flops import SMOLLM2_135M

from h200_run import Waits, run_h200
from llenergymeasure.energy.running_energy import EnergySoFar
from llenergymeasure.errors import PreflightError
from llenergymeasure.experiment.options import RunOptions
from llenergymeasure.experiment.reporter import NullReporter, WindowSoFar
from llenergymeasure.study.models import HeadlineMetrics
from llenergymeasure.system.locks import DeviceLocks, runtime_dir
from llenergymeasure.testing.h200 import h200, h200_nvml
from llenergymeasure.testing.simulated_gpu_engine import SimulatedGpuEngine
from llenergymeasure.testing.simulated_nvml import NVMLError_DriverNotLoaded, SimulatedNvml

# The counter steps every 100 ms: over the tests' 1 s idle figures that is up to 10 %.
IDLE_TOLERANCE = 0.12


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cached baselines of this test only."""
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))


def codes(result: object) -> set[str]:
    return {w.code for w in result.warnings}  # type: ignore[attr-defined]


# --- 1. the baseline is the idle power of the loaded engine -----------------------------


def test_1_baseline_is_taken_with_the_engine_loaded_and_the_bare_idle_kept_apart() -> None:
    result = run_h200()
    energy = result.energy
    assert energy.baseline is not None and energy.idle_no_context is not None
    # 120 W with a context and the model resident, not the 80 W of a bare GPU
    assert energy.baseline.power_w == pytest.approx(120.0, rel=IDLE_TOLERANCE)
    assert energy.baseline.state is not None and "engine loaded" in energy.baseline.state
    assert energy.idle_no_context.power_w == pytest.approx(80.0, rel=IDLE_TOLERANCE)
    assert energy.idle_no_context.state is not None
    assert "no CUDA context" in energy.idle_no_context.state
    assert energy.static_j == pytest.approx(energy.baseline.power_w * result.window.duration_s)
    assert energy.total_j is not None and energy.adjusted_j is not None
    assert energy.adjusted_j == pytest.approx(energy.total_j - energy.static_j)
    assert result.methodology.version == "2.0"


def test_1_the_no_context_idle_is_cached_and_costs_no_second_baseline() -> None:
    nvml = h200_nvml()
    first = run_h200(nvml=nvml)
    second = run_h200(nvml=nvml)
    assert first.energy.idle_no_context is not None and second.energy.idle_no_context is not None
    assert second.energy.idle_no_context.strategy == "cached"
    assert second.energy.idle_no_context.measured_at == first.energy.idle_no_context.measured_at
    # the loaded baseline is still measured afresh (strategy: fresh)
    assert second.energy.baseline is not None and second.energy.baseline.note == "measured now"


# --- 2. the headline sums measured domains only -----------------------------------------


def test_2_the_cpu_estimate_stands_beside_the_gpu_counter_and_is_not_added_to_it() -> None:
    result = run_h200()
    energy = result.energy
    by_domain = {d.domain: d for d in energy.domains}
    assert by_domain["gpu:0"].method == "counter"
    assert by_domain["cpu:0"].method == "estimated"
    assert energy.total_j == pytest.approx(by_domain["gpu:0"].energy_j)
    assert (energy.method, energy.confidence) == ("counter", "high")
    assert energy.estimated is not None
    assert energy.estimated.domains == ("cpu:0",)
    assert energy.estimated.total_j == pytest.approx(by_domain["cpu:0"].energy_j)
    n_out = result.tokens.n_output_tokens
    assert energy.j_per_output_token == pytest.approx(energy.total_j / n_out)
    assert energy.estimated.j_per_output_token == pytest.approx(energy.estimated.total_j / n_out)
    (estimated,) = [w for w in result.warnings if w.code == "estimated_energy"]
    assert "not added to it" in estimated.message


def test_2_a_cpu_only_run_shows_its_estimate_apart_and_a_null_headline() -> None:
    from llenergymeasure import run_experiment
    from llenergymeasure.testing.fake_sampler import FakeEnergySampler

    result = run_experiment(
        {"engine": "fake", "task": {"dataset": {"n_prompts": 2}, "max_output_tokens": 4}},
        sampler=FakeEnergySampler({"cpu:0": 10.0}, method="estimated"),
    )
    energy = result.energy
    assert energy.total_j is None and energy.method is None and energy.j_per_output_token is None
    assert energy.estimated is not None and energy.estimated.domains == ("cpu:0",)
    assert energy.estimated.method == "estimated" and energy.estimated.confidence == "low"
    assert "estimated_energy" in codes(result) and "no_energy" not in codes(result)
    # a study's summary of such runs: the estimate, labelled as one
    metrics = HeadlineMetrics.of(result)
    assert metrics.energy_method == "estimated"
    assert metrics.j_per_output_token == energy.estimated.j_per_output_token


# --- 3. a CUDA run whose NVML cannot be read fails in pre-flight --------------------------


def test_3_cuda_without_a_readable_nvml_fails_pre_flight_unless_another_sampler_is_named() -> None:
    broken = SimulatedNvml([h200()], init_error=NVMLError_DriverNotLoaded)
    with pytest.raises(PreflightError) as caught:
        run_h200(nvml=broken)
    (problem,) = caught.value.problems
    assert problem == (
        "this run uses cuda:0 but NVML cannot measure it: "
        "NVML could not initialise: Driver Not Loaded"
    )
    named = run_h200({"measurement": {"energy_sampler": "estimate"}}, nvml=broken)
    assert named.energy.sampler == "estimate"


# --- 5. the window repeats the prompts until min_window_s -------------------------------


def test_5_the_window_repeats_the_prompt_set_until_it_lasts_min_window_s() -> None:
    # one pass: 2 batches x 10 steps x 5 ms = ~0.1 s
    result = run_h200({"measurement": {"min_window_s": 1.5}})
    window, tokens = result.window, result.tokens
    assert window.duration_s >= 1.5
    assert window.min_window_s == 1.5
    assert window.n_passes > 5
    assert tokens.n_prompts == 4
    assert tokens.n_completed == 4 * window.n_passes
    assert len(result.requests) == tokens.n_completed
    assert [r.prompt_id for r in result.requests[:8]] == [
        r.prompt_id for r in result.requests[:4]
    ] * 2
    assert tokens.n_output_tokens == sum(r.n_output_tokens for r in result.requests)
    energy = result.energy
    assert energy.total_j is not None
    assert energy.j_per_output_token == pytest.approx(energy.total_j / tokens.n_output_tokens)
    assert energy.j_per_request == pytest.approx(energy.total_j / tokens.n_completed)
    assert "short_window" not in codes(result)


def test_5_the_minimum_is_10_s_on_a_gpu_and_none_on_the_cpu() -> None:
    from llenergymeasure.config.models import MeasurementConfig

    assert MeasurementConfig().min_window_for(on_gpu=True) == 10.0
    assert MeasurementConfig().min_window_for(on_gpu=False) == 0.0


# --- 6. the power cap is not throttling ---------------------------------------------------


def test_6_a_gpu_at_its_power_cap_reports_power_capped_seconds_and_no_throttling() -> None:
    result = run_h200()
    (thermal,) = result.thermal
    assert thermal.power_capped_s is not None and thermal.power_capped_s > 0.5
    assert thermal.reason_sources["sw_power_cap"] == "counter"
    assert thermal.reasons == () and thermal.throttled_s == 0.0
    assert "throttling" not in codes(result)


def test_6_thermal_slowdown_still_raises_the_throttling_warning() -> None:
    nvml = h200_nvml(gpu={"throttle_reasons": 0x20})
    result = run_h200(nvml=nvml)
    (thermal,) = result.thermal
    assert thermal.reasons == ("sw_thermal_slowdown",)
    assert thermal.throttled_s == pytest.approx(result.window.duration_s, rel=0.2)
    assert "throttling" in codes(result)


@pytest.mark.parametrize(
    ("units_per_s", "why"),
    [(1e6, "where the sampled bits show"), (1e12, "window")],
    ids=["microseconds", "picoseconds"],
)
def test_6_a_reason_counter_that_disagrees_with_the_bits_gives_way_to_them(
    units_per_s: float, why: str
) -> None:
    # a driver whose counters read 1000 x less (or more) than NVML's nanoseconds
    result = run_h200(nvml=h200_nvml(gpu={"reason_counter_units_per_s": units_per_s}))
    (thermal,) = result.thermal
    source = thermal.reason_sources["sw_power_cap"]
    assert source.startswith("sampled (NVML's duration counter disagreed") and why in source
    assert thermal.power_capped_s is not None
    assert 0.5 < thermal.power_capped_s <= result.window.duration_s + 0.1
    assert "throttling" not in codes(result)


# --- 9. the baseline cache is keyed on the GPUs in scope -----------------------------------


def test_9_runs_on_different_gpus_never_share_a_cached_baseline() -> None:
    # GPU 1 idles at 150 W: a baseline cached from GPU 0 would be 120 W
    nvml = SimulatedNvml([h200(index=0), h200(index=1, idle_w=110.0)], call_latency_s=0.001)
    cached = {"measurement": {"baseline": {"strategy": "cached"}}}
    on_0 = run_h200(cached, nvml=nvml, engine=SimulatedGpuEngine(nvml, ["cuda:0"]))
    on_1 = run_h200(cached, nvml=nvml, engine=SimulatedGpuEngine(nvml, ["cuda:1"]))
    assert on_0.energy.baseline is not None and on_1.energy.baseline is not None
    assert on_0.energy.baseline.power_w == pytest.approx(120.0, rel=IDLE_TOLERANCE)
    assert on_1.energy.baseline.note == "measured now"
    assert on_1.energy.baseline.power_w == pytest.approx(150.0, rel=IDLE_TOLERANCE)
    assert on_1.energy.baseline.power_w_by_domain.keys() == {"gpu:1"}


def test_9_the_same_cuda_ordinal_on_another_gpu_is_another_baseline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # cuda:0 is GPU 0 under CUDA_VISIBLE_DEVICES=0 and GPU 1 (150 W loaded) under =1: the
    # device names and the engine's settings are the same, only the UUIDs tell them apart
    nvml = SimulatedNvml([h200(index=0), h200(index=1, idle_w=110.0)], call_latency_s=0.001)
    cached = {"measurement": {"baseline": {"strategy": "cached"}}}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    on_0 = run_h200(cached, nvml=nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    on_1 = run_h200(cached, nvml=nvml)
    assert on_0.energy.baseline is not None and on_1.energy.baseline is not None
    assert on_0.energy.baseline.power_w == pytest.approx(120.0, rel=IDLE_TOLERANCE)
    assert on_1.energy.baseline.note == "measured now"
    assert on_1.energy.baseline.power_w == pytest.approx(150.0, rel=IDLE_TOLERANCE)
    assert on_1.energy.idle_no_context is not None
    assert on_1.energy.idle_no_context.power_w == pytest.approx(110.0, rel=IDLE_TOLERANCE)


def test_9_a_different_engine_state_is_a_different_baseline() -> None:
    nvml = h200_nvml()
    cached = {"measurement": {"baseline": {"strategy": "cached"}}}
    run_h200(cached, nvml=nvml)
    again = run_h200(cached, nvml=nvml)
    other = run_h200({**cached, "fake": {"batch_size": 4}}, nvml=nvml)
    assert again.energy.baseline is not None and again.energy.baseline.strategy == "cached"
    assert again.energy.baseline.note.startswith("cached")
    assert other.energy.baseline is not None and other.energy.baseline.note == "measured now"


# --- 11. a shared GPU is warned about, or refused with --strict ---------------------------


def test_11_another_process_on_the_gpu_is_a_warning_or_with_strict_a_refusal() -> None:
    nvml = h200_nvml()
    nvml.open_context(0, pid=4321, name="someone-else", used_mib=20_000.0)
    result = run_h200(nvml=nvml)
    (shared,) = [w for w in result.warnings if w.code == "shared_gpu"]
    assert "PID 4321 (someone-else, 20,000 MiB)" in shared.message
    with pytest.raises(PreflightError) as caught:
        run_h200(nvml=nvml, options=RunOptions(strict=True))
    assert any("PID 4321" in p and p.endswith("(--strict)") for p in caught.value.problems)


def test_11_a_model_larger_than_the_free_memory_is_a_warning_or_with_strict_a_refusal() -> None:
    nvml = h200_nvml(gpu={"memory_total_mib": 600})
    nvml.open_context(0, pid=4321, used_mib=500.0)
    result = run_h200(nvml=nvml)
    (memory,) = [w for w in result.warnings if w.code == "gpu_memory"]
    assert "has 100 MiB free" in memory.message
    with pytest.raises(PreflightError, match="MiB free"):
        run_h200(nvml=nvml, options=RunOptions(strict=True))


# --- 12. device_map: auto is measured on every GPU it may use ----------------------------


def test_12_device_map_auto_measures_every_visible_gpu() -> None:
    nvml = h200_nvml(2)
    result = run_h200(
        {"engine": "transformers", "fake": None, "transformers": {"device_map": "auto"}},
        nvml=nvml,
        engine=SimulatedGpuEngine(nvml, ["cuda:0"]),
    )
    gpus = [d for d in result.energy.domains if d.domain.startswith("gpu:")]
    assert [d.domain for d in gpus] == ["gpu:0", "gpu:1"]
    assert [d.device_uuid for d in gpus] == [g.uuid for g in nvml.gpus]
    assert [a["in_scope"] for a in result.environment.accelerators] == [True, True]


def test_12_measurement_devices_names_the_scope() -> None:
    nvml = h200_nvml(2)
    result = run_h200(
        {"measurement": {"devices": ["cuda:1"]}}, nvml=nvml, engine=SimulatedGpuEngine(nvml)
    )
    assert [d.domain for d in result.energy.domains if d.domain.startswith("gpu:")] == ["gpu:1"]
    assert [a["in_scope"] for a in result.environment.accelerators] == [False, True]


# --- 14. nothing measured is null, never 0 ------------------------------------------------


class NoRequests(SimulatedGpuEngine):
    """An engine whose every request ends before it starts: no request, no token."""

    def load(self, config, model):  # type: ignore[no-untyped-def]
        loaded = super().load(config, model)
        inner = loaded.generate

        def generate(prepared, *, on_progress=None):  # type: ignore[no-untyped-def]
            output = inner(prepared, on_progress=on_progress)
            return type(output)(requests=(), timing_definition=output.timing_definition)

        loaded.generate = generate  # type: ignore[method-assign]
        return loaded


def test_14_latency_and_per_token_figures_of_an_empty_window_are_null() -> None:
    nvml = h200_nvml()
    result = run_h200({"measurement": {"min_window_s": 0.3}}, nvml=nvml, engine=NoRequests(nvml))
    assert result.tokens.n_completed == 0
    assert result.latency.e2e is None and result.latency.ttft is None
    assert result.energy.j_per_output_token is None and result.energy.j_per_request is None


class NoOutputTokens(SimulatedGpuEngine):
    """An engine of a known shape whose every request reads its prompt and stops at once."""

    def load(self, config, model):  # type: ignore[no-untyped-def]
        loaded = super().load(config, model)
        loaded.info = replace(loaded.info, shape=SMOLLM2_135M)
        inner = loaded.generate

        def generate(prepared, *, on_progress=None):  # type: ignore[no-untyped-def]
            output = inner(prepared, on_progress=on_progress)
            silent = tuple(
                replace(r, n_output_tokens=0, itl_ms=None, token_ids=()) for r in output.requests
            )
            return replace(output, requests=silent)

        loaded.generate = generate  # type: ignore[method-assign]
        return loaded


def test_14_flops_per_output_token_of_a_window_with_no_output_token_is_null() -> None:
    nvml = h200_nvml()
    result = run_h200(
        {"measurement": {"min_window_s": 0.3}}, nvml=nvml, engine=NoOutputTokens(nvml)
    )
    assert result.tokens.n_output_tokens == 0 and result.tokens.n_input_tokens > 0
    assert result.compute is not None  # the model's shape is known: a real FLOPs account
    assert result.flops is not None and result.flops.total > 0
    assert result.flops.per_output_token is None
    assert result.energy.j_per_output_token is None


def test_14_the_short_window_warning_follows_min_window_s() -> None:
    accepted = run_h200({"measurement": {"min_window_s": 0.5}})
    assert accepted.window.duration_s < 10.0
    assert "short_window" not in codes(accepted)


# --- 15. one llem run per GPU at a time ----------------------------------------------------


def test_15_a_run_fails_naming_the_holder_when_its_gpu_stays_locked() -> None:
    nvml = h200_nvml()
    holder = DeviceLocks([nvml.gpus[0].uuid], runtime_dir())
    assert holder.try_acquire() == {}
    try:
        with pytest.raises(PreflightError) as caught:
            run_h200(nvml=nvml, options=RunOptions(lock_timeout_s=0.3))
    finally:
        holder.release()
    (problem,) = caught.value.problems
    assert problem.startswith(f"gpu:0 (NVIDIA H200, {nvml.gpus[0].uuid}) is being measured")
    assert f"PID {os.getpid()}" in problem
    assert caught.value.hint is not None and "--no-lock" in caught.value.hint


def test_15_a_run_waits_with_a_countdown_for_its_gpu_and_no_lock_opts_out() -> None:
    nvml = h200_nvml()
    holder = DeviceLocks([nvml.gpus[0].uuid], runtime_dir())
    holder.try_acquire()
    threading.Timer(0.6, holder.release).start()
    reporter = Waits()
    started = time.monotonic()
    result = run_h200(nvml=nvml, options=RunOptions(lock_timeout_s=10), reporter=reporter)
    assert time.monotonic() - started > 0.6
    waits = [reason for _, reason in reporter.waits if "is being measured by" in reason]
    assert waits and "s left" in waits[0]
    assert result.energy.total_j is not None
    other = DeviceLocks([nvml.gpus[0].uuid], runtime_dir())
    other.try_acquire()
    try:
        assert run_h200(nvml=nvml, options=RunOptions(lock=False)).energy.total_j is not None
    finally:
        other.release()


# --- live progress: the window's tokens and energy so far -------------------------------


class SoFar(NullReporter):
    """Keeps every advance of the measured window with its tokens and energy so far."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int | None, EnergySoFar | None]] = []

    def advance(self, done: int, so_far: WindowSoFar | None = None) -> None:
        so_far = so_far or WindowSoFar()
        self.seen.append((done, so_far.n_output_tokens, so_far.energy))


def test_each_batch_of_the_window_reports_its_tokens_and_the_gpus_energy_so_far() -> None:
    reporter = SoFar()
    result = run_h200({"measurement": {"min_window_s": 1.5}}, reporter=reporter)
    window = [(n, e) for _, n, e in reporter.seen if n is not None]
    assert len(window) == 2 * result.window.n_passes  # each batch of each pass
    tokens = [n for n, _ in window]
    assert tokens == sorted(tokens) and tokens[-1] == result.tokens.n_output_tokens
    energies = [e for _, e in window if e is not None]
    assert energies and all(e.method == "counter" and e.n_devices == 1 for e in energies)
    joules = [e.energy_j for e in energies]
    assert joules == sorted(joules) and joules[-1] > 0
    # Read between batches: never more than the window's own GPU figure, and close to it
    # by its end (within a counter step or two of the 1.5 s window).
    gpu_j = next(d.energy_j for d in result.energy.domains if d.domain == "gpu:0")
    assert gpu_j is not None and 0.8 * gpu_j <= joules[-1] <= 1.05 * gpu_j
