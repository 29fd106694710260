"""Throttle detection and trace warnings from scripted clock-event reasons and temperatures."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from llenergymeasure.energy.throttle import THROTTLE_BITS, summarise_thermal, trace_warnings
from llenergymeasure.energy.trace import Trace, TraceRow

IDLE = 0x1
APP_CLOCKS = 0x2
SW_POWER_CAP = 0x4
HW_SLOWDOWN = 0x8
SW_THERMAL = 0x20
HW_THERMAL = 0x40
HW_POWER_BRAKE = 0x80

STEP_S = 0.125  # exact in binary, so window edges land on samples


def _trace(
    per_device: dict[str, Sequence[TraceRow]],
    *,
    interval_ms: int = 125,
    errors: tuple[str, ...] = (),
) -> Trace:
    rows = sorted((r for rs in per_device.values() for r in rs), key=lambda r: r.t_s)
    ticks = tuple(sorted({r.t_s for r in rows}))
    return Trace(interval_ms=interval_ms, samples=tuple(rows), marks={}, errors=errors, ticks=ticks)


def _gpu(
    device: str,
    reasons: Sequence[int | None],
    *,
    temperatures: Sequence[float] | None = None,
    clocks: Sequence[float] | None = None,
) -> list[TraceRow]:
    return [
        TraceRow(
            t_s=i * STEP_S,
            device=device,
            power_w=200.0,
            temperature_c=temperatures[i] if temperatures else 60.0,
            sm_clock_mhz=clocks[i] if clocks else 1800.0,
            throttle_reasons=bits,
        )
        for i, bits in enumerate(reasons)
    ]


def test_the_throttle_bits_are_the_nvml_values() -> None:
    assert dict(THROTTLE_BITS) == {
        "hw_slowdown": 0x8,
        "sw_thermal_slowdown": 0x20,
        "hw_thermal_slowdown": 0x40,
        "hw_power_brake_slowdown": 0x80,
    }


def test_throttled_seconds_are_time_per_device_not_summed() -> None:
    # gpu:0 is HW-slowed for samples 8..15 (1 s), gpu:1 thermally slowed for 8..11 (0.5 s).
    gpu0 = [HW_SLOWDOWN if 8 <= i < 16 else 0 for i in range(40)]
    gpu1 = [SW_THERMAL | HW_THERMAL if 8 <= i < 12 else 0 for i in range(40)]
    summary = summarise_thermal(
        _trace({"gpu:0": _gpu("gpu:0", gpu0), "gpu:1": _gpu("gpu:1", gpu1)})
    )
    assert summary["gpu:0"].throttled_s == pytest.approx(1.0)
    assert summary["gpu:0"].reasons == ("hw_slowdown",)
    assert (summary["gpu:0"].first_s, summary["gpu:0"].last_s) == (1.0, 2.0)
    assert summary["gpu:1"].throttled_s == pytest.approx(0.5)
    assert summary["gpu:1"].reasons == ("sw_thermal_slowdown", "hw_thermal_slowdown")
    assert summary["gpu:1"].seconds_by_reason == {
        "sw_thermal_slowdown": pytest.approx(0.5),
        "hw_thermal_slowdown": pytest.approx(0.5),
    }
    assert (summary["gpu:1"].first_s, summary["gpu:1"].last_s) == (1.0, 1.5)
    assert summary["gpu:0"].throttled and summary["gpu:1"].throttled


def test_sw_power_cap_is_power_capped_time_and_never_throttling() -> None:
    # an H200 at its 700 W limit reported 0x4 in 830 of 866 samples of a full load
    reasons = [SW_POWER_CAP if i >= 2 else 0 for i in range(40)]
    trace = _trace({"gpu:0": _gpu("gpu:0", reasons)})
    summary = summarise_thermal(trace)["gpu:0"]
    assert summary.power_capped_s == pytest.approx(37 * STEP_S)  # the last sample holds no time
    assert summary.seconds_by_reason == {"sw_power_cap": pytest.approx(37 * STEP_S)}
    assert summary.reason_sources == {"sw_power_cap": "sampled"}
    assert summary.throttled_s == 0.0 and summary.reasons == () and not summary.throttled
    assert "throttling" not in [w.code for w in trace_warnings(trace)]


def test_reason_counters_replace_sampled_bits_where_nvml_keeps_them() -> None:
    # the sampled bits miss a short thermal slowdown between samples; the counter has it
    reasons = [SW_POWER_CAP] * 40
    trace = _trace({"gpu:0": _gpu("gpu:0", reasons)})
    counters = {"gpu:0": {"sw_power_cap": 4.75, "sw_thermal_slowdown": 0.02}}
    summary = summarise_thermal(trace, counters=counters)["gpu:0"]
    assert summary.power_capped_s == pytest.approx(4.75)
    assert summary.reason_sources == {"sw_power_cap": "counter", "sw_thermal_slowdown": "counter"}
    assert summary.reasons == ("sw_thermal_slowdown",)
    assert summary.throttled_s == pytest.approx(0.02)
    (warning,) = [w for w in trace_warnings(trace, counters=counters) if w.code == "throttling"]
    assert "sw_thermal_slowdown 0.02 s (counter)" in warning.message
    quiet = {"gpu:0": {"sw_power_cap": 4.75, "sw_thermal_slowdown": 0.0}}
    assert "throttling" not in [w.code for w in trace_warnings(trace, counters=quiet)]


def test_a_counter_far_below_the_sampled_bits_gives_way_to_them() -> None:
    # 4.875 s of 0x4 in the bits; a counter read as ns that a driver kept in µs says 4.9 ms
    trace = _trace({"gpu:0": _gpu("gpu:0", [SW_POWER_CAP] * 40)})
    summary = summarise_thermal(trace, counters={"gpu:0": {"sw_power_cap": 0.004875}})["gpu:0"]
    assert summary.power_capped_s == pytest.approx(39 * STEP_S)
    source = summary.reason_sources["sw_power_cap"]
    assert source.startswith("sampled (NVML's duration counter disagreed")
    assert "sampled bits show 4.88 s" in source


def test_a_counter_longer_than_the_window_or_going_backwards_gives_way_to_the_bits() -> None:
    reasons = [SW_THERMAL if 8 <= i < 16 else 0 for i in range(40)]
    trace = _trace({"gpu:0": _gpu("gpu:0", reasons)})
    t0, t1 = 0.0, 39 * STEP_S
    for counted_s, why in ((50.0, "in a 4.88 s window"), (-0.3, "went backwards")):
        counters = {"gpu:0": {"sw_thermal_slowdown": counted_s}}
        summary = summarise_thermal(trace, t0, t1, counters=counters)["gpu:0"]
        assert summary.seconds_by_reason["sw_thermal_slowdown"] == pytest.approx(8 * STEP_S)
        assert why in summary.reason_sources["sw_thermal_slowdown"]
        assert summary.throttled_s == pytest.approx(8 * STEP_S)


def test_a_counter_short_of_a_brief_sampled_stretch_is_believed() -> None:
    # two samples (0.25 s) of bits are too coarse to judge a counter that saw 1 ms
    reasons = [SW_THERMAL if i in (3, 4) else 0 for i in range(40)]
    trace = _trace({"gpu:0": _gpu("gpu:0", reasons)})
    counters = {"gpu:0": {"sw_thermal_slowdown": 0.001}}
    summary = summarise_thermal(trace, 0.0, 39 * STEP_S, counters=counters)["gpu:0"]
    assert summary.reason_sources["sw_thermal_slowdown"] == "counter"
    assert summary.throttled_s == pytest.approx(0.25)  # any reason at all: the bits' stretch


def test_an_implausible_counter_without_bits_is_no_figure() -> None:
    trace = _trace({"gpu:0": _gpu("gpu:0", [None] * 10)})
    counters = {"gpu:0": {"sw_power_cap": 99.0}}
    summary = summarise_thermal(trace, 0.0, 9 * STEP_S, counters=counters)["gpu:0"]
    assert summary.power_capped_s is None and summary.throttled_s is None
    assert summary.reason_sources["sw_power_cap"].startswith("none (")


def test_throttling_is_clipped_to_the_window_and_carried_in_from_before_it() -> None:
    # Throttled from sample 4 (0.5 s) to sample 12 (1.5 s); the window is [1.0625, 1.25].
    reasons = [HW_POWER_BRAKE | HW_SLOWDOWN if 4 <= i < 12 else 0 for i in range(20)]
    summary = summarise_thermal(_trace({"gpu:0": _gpu("gpu:0", reasons)}), 1.0625, 1.25)["gpu:0"]
    assert summary.throttled_s == pytest.approx(1.25 - 1.0625)
    assert summary.first_s == 1.0625
    assert summary.last_s == 1.25
    assert summary.reasons == ("hw_slowdown", "hw_power_brake_slowdown")
    assert summary.n_samples == 2  # samples at 1.125 and 1.25


def test_idle_app_clock_and_unknown_bits_are_not_throttling() -> None:
    reasons = [IDLE | APP_CLOCKS | 0x10 | 0x100] * 20
    summary = summarise_thermal(_trace({"gpu:0": _gpu("gpu:0", reasons)}))["gpu:0"]
    assert summary.throttled_s == 0.0
    assert summary.reasons == ()
    assert summary.first_s is None and summary.last_s is None
    assert not summary.throttled
    assert [w.code for w in trace_warnings(_trace({"gpu:0": _gpu("gpu:0", reasons)}))] == []


def test_without_reason_bits_throttled_seconds_are_unknown_not_zero() -> None:
    summary = summarise_thermal(_trace({"gpu:0": _gpu("gpu:0", [None] * 20)}))["gpu:0"]
    assert summary.throttled_s is None
    assert summary.max_temperature_c == 60.0


def test_temperature_and_clock_summary_and_drift() -> None:
    temperatures = [50.0 + i for i in range(20)]  # 50 -> 69 °C
    clocks = [1800.0] * 10 + [1500.0] * 10
    trace = _trace({"gpu:0": _gpu("gpu:0", [0] * 20, temperatures=temperatures, clocks=clocks)})
    summary = summarise_thermal(trace)["gpu:0"]
    assert summary.max_temperature_c == 69.0
    assert summary.temperature_drift_c == pytest.approx(19.0)
    assert summary.min_sm_clock_mhz == 1500.0
    assert summary.mean_sm_clock_mhz == pytest.approx(1650.0)
    # In a window over the last 10 samples only 9 °C of drift.
    late = summarise_thermal(trace, 10 * STEP_S, 19 * STEP_S)["gpu:0"]
    assert late.temperature_drift_c == pytest.approx(9.0)


def test_devices_without_thermal_readings_are_left_out() -> None:
    process = [TraceRow(t_s=i * STEP_S, device="process", utilisation_pct=99.0) for i in range(20)]
    summary = summarise_thermal(_trace({"gpu:0": _gpu("gpu:0", [0] * 20), "process": process}))
    assert list(summary) == ["gpu:0"]


def test_a_clean_trace_raises_no_warning() -> None:
    assert trace_warnings(_trace({"gpu:0": _gpu("gpu:0", [0] * 40)})) == []


def test_warnings_for_few_samples_gaps_drift_and_throttling() -> None:
    reasons = [SW_THERMAL if i >= 30 else 0 for i in range(40)]
    rows = _gpu("gpu:0", reasons, temperatures=[55.0 + 0.5 * i for i in range(40)])
    del rows[10:14]  # a 0.625 s gap, 5x the interval
    sparse = [TraceRow(t_s=i * 0.5, device="gpu:1", temperature_c=60.0) for i in range(9)]
    warnings = trace_warnings(_trace({"gpu:0": rows, "gpu:1": sparse}))
    by_code = {w.code: w for w in warnings}
    assert list(by_code) == ["few_samples", "sampler_gaps", "temperature_drift", "throttling"]
    assert "gpu:1 (9)" in by_code["few_samples"].message
    assert "gpu:0" not in by_code["few_samples"].message
    assert "0.625 s on gpu:0" in by_code["sampler_gaps"].message
    assert "gpu:0 +19.5 °C" in by_code["temperature_drift"].message
    assert "sw_thermal_slowdown" in by_code["throttling"].message
    assert all(w.remedy for w in warnings)


def test_drift_of_exactly_10_c_or_a_gap_of_2x_interval_does_not_warn() -> None:
    rows = _gpu("gpu:0", [0] * 20, temperatures=[60.0] * 19 + [70.0])
    del rows[5]  # a gap of exactly 2 intervals
    assert trace_warnings(_trace({"gpu:0": rows})) == []


def test_an_empty_trace_and_a_failed_source_warn() -> None:
    codes = [w.code for w in trace_warnings(_trace({}, errors=("source 'nvml' failed",)))]
    assert codes == ["few_samples", "telemetry_failed"]
