"""Window energy attributed to prefill and decode from per-step times and the trace."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llenergymeasure.energy.trace import Trace, TraceRow
from llenergymeasure.engines.base import BatchTiming, RequestOutput
from llenergymeasure.experiment.phase_energy import phase_energy
from llenergymeasure.records.energy import DomainEnergy, EnergyResult

ORIGIN_S = 1000.0  # the trace's origin on the perf_counter clock
# Two batches (perf_counter times): prefill 0.10-0.20 and 0.60-0.65, decode 0.20-0.50 and
# 0.65-0.90 (trace time); the window is 0.05-0.95.
BATCHES = [
    BatchTiming((0, 1), ORIGIN_S + 0.10, (ORIGIN_S + 0.20, ORIGIN_S + 0.35, ORIGIN_S + 0.50)),
    BatchTiming((2, 3), ORIGIN_S + 0.60, (ORIGIN_S + 0.65, ORIGIN_S + 0.90)),
]
REQUESTS = [
    RequestOutput(index=i, n_input_tokens=n_in, n_output_tokens=n_out, latency_ms=1.0,
                  ttft_ms=1.0, itl_ms=None)
    for i, (n_in, n_out) in enumerate([(10, 3), (20, 3), (30, 2), (40, 2)])
]  # fmt: skip
PREFILL_IV = [(0.10, 0.20), (0.60, 0.65)]
DECODE_IV = [(0.20, 0.50), (0.65, 0.90)]
# Ground truth: 300 W in prefill, 100 W in decode, 50 W otherwise -> 45, 55 and 10 J.
TRUE_PREFILL_J, TRUE_DECODE_J, TRUE_TOTAL_J = 45.0, 55.0, 110.0


def _power(t: float) -> float:
    if any(a <= t < b for a, b in PREFILL_IV):
        return 300.0
    if any(a <= t < b for a, b in DECODE_IV):
        return 100.0
    return 50.0


def _trace(interval_ms: int, rows: list[TraceRow]) -> Trace:
    return Trace(
        interval_ms=interval_ms,
        samples=tuple(rows),
        marks={"window_start": 0.05, "window_end": 0.95},
        errors=(),
        origin_s=ORIGIN_S,
    )


def _power_rows(device: str, step_s: float, value: Callable[[float], float]) -> list[TraceRow]:
    n = int(1.0 / step_s)
    # sample instants fall between the phase edges, never on them
    return [
        TraceRow(t_s=k * step_s + step_s / 3, device=device, power_w=value(k * step_s + step_s / 3))
        for k in range(n)
    ]


def _energy(*domains: DomainEnergy) -> EnergyResult:
    methods = {d.method for d in domains}
    return EnergyResult(
        sampler="test",
        sampler_reason="test",
        method="estimated" if "estimated" in methods else "counter",
        confidence="high",
        domains=domains,
        total_j=sum(d.energy_j or 0.0 for d in domains),
        adjusted_j=None,
        j_per_output_token=None,
        j_per_request=None,
    )


GPU = DomainEnergy(domain="gpu:0", energy_j=TRUE_TOTAL_J, method="counter", source="nvml")


def test_a_finely_sampled_trace_recovers_the_true_split() -> None:
    trace = _trace(1, _power_rows("gpu:0", 0.001, _power))
    split = phase_energy(_energy(GPU), trace, BATCHES, REQUESTS)
    assert split is not None
    assert split.method == "attributed" and split.energy_method == "counter"
    assert split.domains == ("gpu:0",) and split.weights == "power_w of gpu:0"
    assert split.prefill.energy_j == pytest.approx(TRUE_PREFILL_J, rel=0.01)
    assert split.decode.energy_j == pytest.approx(TRUE_DECODE_J, rel=0.01)
    assert split.other_j == pytest.approx(10.0, rel=0.05)
    assert split.prefill.n_tokens == 100 and split.decode.n_tokens == 6  # 2 + 2 + 1 + 1
    assert split.prefill.j_per_token == pytest.approx(split.prefill.energy_j / 100)
    assert split.prefill.duration_s == pytest.approx(0.15)
    assert split.decode.duration_s == pytest.approx(0.55)
    assert split.prefill.n_intervals == 2 and split.prefill.n_intervals_under_interval == 0
    assert split.prefill.uncertainty_j is not None and split.prefill.uncertainty_j < 1.0
    assert "shorter than" not in split.note


def test_the_counter_sets_the_total_and_the_curve_only_the_shares() -> None:
    # The same power shape at half the scale: the counter's 110 J is still what is split.
    trace = _trace(1, _power_rows("gpu:0", 0.001, lambda t: _power(t) / 2))
    split = phase_energy(_energy(GPU), trace, BATCHES, REQUESTS)
    assert split is not None
    assert split.prefill.energy_j == pytest.approx(TRUE_PREFILL_J, rel=0.01)
    total = (split.prefill.energy_j or 0) + (split.decode.energy_j or 0) + (split.other_j or 0)
    assert total == pytest.approx(TRUE_TOTAL_J)


def test_steps_shorter_than_the_sample_interval_carry_a_stated_uncertainty() -> None:
    trace = _trace(100, _power_rows("gpu:0", 0.1, _power))
    split = phase_energy(_energy(GPU), trace, BATCHES, REQUESTS)
    assert split is not None
    assert split.trace_interval_ms == 100
    assert split.prefill.n_intervals_under_interval == 1  # the 50 ms prefill
    assert "1 of 2 prefill intervals are shorter than the 100 ms" in split.note
    assert split.prefill.uncertainty_j is not None and split.prefill.uncertainty_j > 1.0
    error = abs((split.prefill.energy_j or 0) - TRUE_PREFILL_J)
    assert error > 1.0  # the coarse trace does misplace energy ...
    assert error <= split.prefill.uncertainty_j  # ... within what the result says


def test_an_estimated_cpu_figure_is_split_by_this_process_utilisation() -> None:
    # Each utilisation row is the mean over the 10 ms before it, as ProcessTelemetry reports.
    def mean_before(t: float) -> float:
        return sum(_power(t - 0.010 + 0.0005 + k * 0.001) for k in range(10)) / 10

    rows = [
        TraceRow(t_s=k * 0.01, device="process", utilisation_pct=mean_before(k * 0.01))
        for k in range(1, 101)
    ]
    cpu = DomainEnergy(domain="cpu:0", energy_j=TRUE_TOTAL_J, method="estimated", source="estimate")
    split = phase_energy(_energy(cpu), _trace(10, rows), BATCHES, REQUESTS)
    assert split is not None
    assert split.energy_method == "estimated" and split.weights == "utilisation_pct of this process"
    assert split.prefill.energy_j == pytest.approx(TRUE_PREFILL_J, rel=0.02)
    assert split.decode.energy_j == pytest.approx(TRUE_DECODE_J, rel=0.02)


def test_measured_domains_are_split_and_estimated_ones_left_out() -> None:
    rows = _power_rows("gpu:0", 0.001, _power) + [
        TraceRow(t_s=k * 0.01, device="process", utilisation_pct=100.0) for k in range(101)
    ]
    rows.sort(key=lambda r: r.t_s)
    cpu = DomainEnergy(domain="cpu:0", energy_j=30.0, method="estimated", source="estimate")
    split = phase_energy(_energy(GPU, cpu), _trace(1, rows), BATCHES, REQUESTS)
    assert split is not None
    assert split.domains == ("gpu:0",) and split.energy_method == "counter"
    total = (split.prefill.energy_j or 0) + (split.decode.energy_j or 0) + (split.other_j or 0)
    assert total == pytest.approx(TRUE_TOTAL_J)  # never measured + estimated


def test_no_split_without_step_times_a_curve_or_a_window() -> None:
    trace = _trace(1, _power_rows("gpu:0", 0.001, _power))
    assert phase_energy(_energy(GPU), trace, [], REQUESTS) is None
    assert phase_energy(_energy(GPU), trace, [BatchTiming((0,), ORIGIN_S, ())], REQUESTS) is None
    no_power = _trace(1, _power_rows("gpu:1", 0.001, _power))
    assert phase_energy(_energy(GPU), no_power, BATCHES, REQUESTS) is None
    unmarked = Trace(interval_ms=1, samples=trace.samples, marks={}, errors=(), origin_s=ORIGIN_S)
    assert phase_energy(_energy(GPU), unmarked, BATCHES, REQUESTS) is None
    nothing = DomainEnergy(domain="gpu:0", energy_j=None, method="counter", source="nvml")
    assert phase_energy(_energy(nothing), trace, BATCHES, REQUESTS) is None
    idle = _trace(1, _power_rows("gpu:0", 0.001, lambda t: 0.0))
    assert phase_energy(_energy(GPU), idle, BATCHES, REQUESTS) is None


def _averaged_rows(device: str, step_s: float) -> list[TraceRow]:
    """nvmlDeviceGetPowerUsage on an H200: the mean of the power over the second before."""

    def mean_of_last_second(t: float) -> float:
        return sum(_power(t - 1.0 + (k + 0.5) / 1000) for k in range(1000)) / 1000

    n = int(1.0 / step_s)
    return [
        TraceRow(t_s=k * step_s, device=device, power_w=mean_of_last_second(k * step_s))
        for k in range(n + 1)
    ]


def test_a_one_second_averaged_power_curve_gives_no_split_and_says_why() -> None:
    trace = _trace(10, _averaged_rows("gpu:0", 0.01))
    split = phase_energy(
        _energy(GPU), trace, BATCHES, REQUESTS, power_sources={"gpu:0": "averaged"}
    )
    assert split is not None and split.power_source == "averaged"
    assert split.energy_method == "counter" and split.domains == ("gpu:0",)
    for phase in (split.prefill, split.decode):
        assert phase.energy_j is None and phase.j_per_token is None
        assert phase.uncertainty_j is None
    assert split.other_j is None
    # what is known stays: the phases' times and tokens
    assert split.prefill.duration_s == pytest.approx(0.15) and split.prefill.n_tokens == 100
    assert split.decode.duration_s == pytest.approx(0.55) and split.decode.n_tokens == 6
    assert "1 s moving average" in split.note and "gpu:0" in split.note
    # the split it would give is far off: 300 W prefills barely move a 1 s average
    instant = phase_energy(_energy(GPU), trace, BATCHES, REQUESTS)
    assert instant is not None and instant.prefill.energy_j is not None
    assert abs(instant.prefill.energy_j - TRUE_PREFILL_J) > 0.4 * TRUE_PREFILL_J


def test_an_instant_power_curve_is_labelled_so() -> None:
    trace = _trace(1, _power_rows("gpu:0", 0.001, _power))
    split = phase_energy(_energy(GPU), trace, BATCHES, REQUESTS, power_sources={"gpu:0": "instant"})
    assert split is not None and split.power_source == "instant"
    assert split.prefill.energy_j == pytest.approx(TRUE_PREFILL_J, rel=0.01)
