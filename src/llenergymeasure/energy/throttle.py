"""Thermal, throttle and power-cap summary of a trace, and the warnings a trace can raise.

Throttling is read from NVML clock-event reasons (DESIGN §4): thermal slowdown (SW and
HW), HW slowdown and HW power brake (:data:`THROTTLE_BITS`). SW power cap (0x4) is not
throttling: a GPU at its power limit reports it through most of a full load, so it is
reported as power-capped seconds and never raises the throttling warning. GPU idle (0x1),
application clocks (0x2), sync boost (0x10) and display clock (0x100) are ignored.

Seconds per reason come from NVML's per-reason duration counters where the sampler read
them (exact, no sampling); otherwise from the sampled bits, where a sample's reasons hold
from that sample until the device's next one (clipped to the window). Seconds are kept
per device, never summed across devices.

A counter is checked against the sampled bits before it is believed: one that went
backwards, that counts more than the window, or under 1 % of the time the bits show
(over at least half a second of them) is not that reason's duration in nanoseconds (a
driver reading another unit, or numbering the field ids differently from the pynvml in
use), so the sampled bits are used and the reason's source says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from llenergymeasure.energy.trace import Trace, TraceRow
from llenergymeasure.records.timeseries import POWER_CAP_BIT, THROTTLE_BITS

__all__ = [
    "POWER_CAP",
    "THROTTLE_BITS",
    "ThrottleSummary",
    "TraceWarning",
    "counter_out_of_window",
    "summarise_thermal",
    "trace_warnings",
]

MIN_SAMPLES = 10
GAP_FACTOR = 2.0
MAX_DRIFT_C = 10.0
POWER_CAP = "sw_power_cap"
# every reason with seconds of its own: the throttling ones, then the power cap
_REASON_BITS = {**THROTTLE_BITS, POWER_CAP: POWER_CAP_BIT}

# device -> reason -> seconds, from NVML's duration counters over the window
ReasonCounters = Mapping[str, Mapping[str, float]]
# The cross-check of a counter against the sampled bits (module docstring): the share of
# the sampled time below which a counter is not believed, the sampled time it needs to
# judge, and the slack over the window's length (edges read a few ms apart).
_MIN_COUNTER_SHARE = 0.01
_MIN_SAMPLED_S = 0.5
_WINDOW_SLACK = 1.05
_WINDOW_SLACK_S = 0.25


@dataclass(frozen=True)
class ThrottleSummary:
    """One device over one window. A figure the device never reported is None.

    ``throttled_s`` is the time any throttling reason was active (None when neither
    sampled bits nor counters say); ``power_capped_s`` the time at the power cap.
    ``seconds_by_reason`` holds each reason's seconds and ``reason_sources`` whether
    they came from NVML's ``counter`` or from ``sampled`` bits. ``first_s`` and
    ``last_s`` bound the sampled throttled stretches (trace time). ``reasons`` names the
    throttling reasons seen, in :data:`THROTTLE_BITS` order. ``temperature_drift_c`` is
    the last minus the first temperature in the window.
    """

    device: str
    n_samples: int
    throttled_s: float | None
    first_s: float | None
    last_s: float | None
    reasons: tuple[str, ...]
    max_temperature_c: float | None
    min_sm_clock_mhz: float | None
    mean_sm_clock_mhz: float | None
    temperature_drift_c: float | None
    power_capped_s: float | None = None
    seconds_by_reason: dict[str, float] = field(default_factory=dict)
    reason_sources: dict[str, str] = field(default_factory=dict)

    @property
    def throttled(self) -> bool:
        """Whether any throttling reason (not the power cap) was active in the window."""
        return bool(self.reasons)


class TraceWarning(NamedTuple):
    """A measurement warning: a stable code, what happened, and what to do about it."""

    code: str
    message: str
    remedy: str


def summarise_thermal(
    trace: Trace,
    t0: float | None = None,
    t1: float | None = None,
    counters: ReasonCounters | None = None,
) -> dict[str, ThrottleSummary]:
    """Throttle, power-cap, temperature and clock summary per device that reports any.

    Devices with no temperature, SM clock, reason bits or counters in the window (such
    as ``process``) are left out. ``counters`` are the reason seconds per device from
    NVML's duration counters; they take the place of sampled bits for their reasons.
    """
    counters = counters or {}
    summaries: dict[str, ThrottleSummary] = {}
    for device in trace.devices():
        inside = trace.rows_between(t0, t1, device=device)
        reports = any(
            r.temperature_c is not None
            or r.sm_clock_mhz is not None
            or r.throttle_reasons is not None
            for r in inside
        )
        if not reports and device not in counters:
            continue
        every = [row for row in trace.samples if row.device == device]
        summaries[device] = _summarise(device, every, inside, t0, t1, counters.get(device, {}))
    return summaries


def trace_warnings(
    trace: Trace,
    t0: float | None = None,
    t1: float | None = None,
    counters: ReasonCounters | None = None,
) -> list[TraceWarning]:
    """Warnings about the trace over ``[t0, t1]``, each with a remedy (at most one per code).

    Codes: ``few_samples``, ``sampler_gaps``, ``temperature_drift``, ``throttling``,
    and ``telemetry_failed`` when a source was dropped.
    """
    warnings = _sampling_warnings(trace, t0, t1)
    thermal = summarise_thermal(trace, t0, t1, counters)
    drifts = [
        f"{d} {s.temperature_drift_c:+.1f} °C"
        for d, s in thermal.items()
        if s.temperature_drift_c is not None and abs(s.temperature_drift_c) > MAX_DRIFT_C
    ]
    if drifts:
        warnings.append(
            TraceWarning(
                "temperature_drift",
                f"temperature changed by more than {MAX_DRIFT_C:g} °C in the window: "
                + ", ".join(drifts),
                "raise measurement.warmup.thermal_floor_s (or warm up longer) so the device "
                "reaches a steady temperature before the window",
            )
        )
    throttled = [_throttle_text(d, s) for d, s in thermal.items() if s.throttled]
    if throttled:
        warnings.append(
            TraceWarning(
                "throttling",
                "clocks were throttled in the window: " + "; ".join(throttled),
                "check cooling, power limits and other load on the device "
                "(nvidia-smi -q -d PERFORMANCE); throttled runs are not comparable with "
                "unthrottled ones",
            )
        )
    if trace.errors:
        warnings.append(
            TraceWarning(
                "telemetry_failed",
                "telemetry was incomplete: " + "; ".join(trace.errors),
                "check the device driver and permissions; the failed readings are null",
            )
        )
    return warnings


def _sampling_warnings(trace: Trace, t0: float | None, t1: float | None) -> list[TraceWarning]:
    warnings: list[TraceWarning] = []
    interval_s = trace.interval_ms / 1000.0
    devices = trace.devices()
    counts = {d: len(trace.rows_between(t0, t1, device=d)) for d in devices}
    few = [f"{d} ({n})" for d, n in counts.items() if n < MIN_SAMPLES]
    if few or not devices:
        where = ", ".join(few) if devices else "no device"
        warnings.append(
            TraceWarning(
                "few_samples",
                f"fewer than {MIN_SAMPLES} power/thermal samples in the window: {where}",
                "lengthen the window (more prompts or output tokens) "
                "or lower measurement.sample_interval_ms",
            )
        )
    gaps = {d: trace.max_gap_s(t0, t1, device=d) for d in devices}
    worst = max(
        ((gap, d) for d, gap in gaps.items() if gap is not None and gap > GAP_FACTOR * interval_s),
        default=None,
    )
    if worst is not None:
        gap_s, device = worst
        warnings.append(
            TraceWarning(
                "sampler_gaps",
                f"the power sampler missed ticks: a gap of {gap_s:.3f} s on {device} "
                f"(interval {interval_s:.3f} s)",
                "reduce other load on the host or raise measurement.sample_interval_ms; "
                "power statistics are coarser, counter energy is unaffected",
            )
        )
    return warnings


def _throttle_text(device: str, summary: ThrottleSummary) -> str:
    parts = [
        f"{reason} {summary.seconds_by_reason.get(reason, 0.0):.2f} s "
        f"({summary.reason_sources.get(reason, 'sampled')})"
        for reason in summary.reasons
    ]
    return f"{device} {summary.throttled_s or 0.0:.2f} s ({', '.join(parts)})"


def _summarise(
    device: str,
    every: list[TraceRow],
    inside: list[TraceRow],
    t0: float | None,
    t1: float | None,
    counted: Mapping[str, float],
) -> ThrottleSummary:
    sampled = _sampled_reasons(every, t0, t1)
    window_s = t1 - t0 if t0 is not None and t1 is not None else None
    seconds, sources, believed = _merge_counters(sampled, counted, window_s)
    reasons = tuple(r for r in THROTTLE_BITS if seconds.get(r, 0.0) > 0)
    known = sampled.known or bool(believed)
    longest = max((seconds[r] for r in reasons), default=0.0)
    temperatures = [r.temperature_c for r in inside if r.temperature_c is not None]
    clocks = [r.sm_clock_mhz for r in inside if r.sm_clock_mhz is not None]
    power_cap_known = sampled.known or POWER_CAP in believed
    return ThrottleSummary(
        device=device,
        n_samples=len(inside),
        throttled_s=max(sampled.throttled_s, longest) if known else None,
        first_s=sampled.first_s,
        last_s=sampled.last_s,
        reasons=reasons,
        max_temperature_c=max(temperatures) if temperatures else None,
        min_sm_clock_mhz=min(clocks) if clocks else None,
        mean_sm_clock_mhz=math.fsum(clocks) / len(clocks) if clocks else None,
        temperature_drift_c=temperatures[-1] - temperatures[0] if len(temperatures) > 1 else None,
        power_capped_s=seconds.get(POWER_CAP, 0.0) if power_cap_known else None,
        seconds_by_reason=seconds,
        reason_sources=sources,
    )


def _merge_counters(
    sampled: _Sampled, counted: Mapping[str, float], window_s: float | None
) -> tuple[dict[str, float], dict[str, str], set[str]]:
    """Seconds and source per reason: the counters that pass the cross-check, else the
    sampled bits; and the reasons whose counter was believed."""
    seconds = {reason: s for reason, s in sampled.seconds.items() if s > 0}
    sources = dict.fromkeys(seconds, "sampled")
    believed: set[str] = set()
    for reason, counted_s in counted.items():
        if reason not in _REASON_BITS:
            continue
        doubt = _counter_doubt(counted_s, sampled.seconds.get(reason, 0.0), window_s)
        if doubt is None:
            seconds[reason], sources[reason] = counted_s, "counter"
            believed.add(reason)
        elif sampled.known:
            sources[reason] = f"sampled (NVML's duration counter disagreed: {doubt})"
        else:
            sources[reason] = f"none (NVML's duration counter was not believed: {doubt})"
    return seconds, sources, believed


def counter_out_of_window(counted_s: float, window_s: float | None) -> bool:
    """Whether a reason's counter went backwards or counted more than the window can hold."""
    too_long = window_s is not None and counted_s > window_s * _WINDOW_SLACK + _WINDOW_SLACK_S
    return counted_s < 0 or too_long


def _counter_doubt(counted_s: float, sampled_s: float, window_s: float | None) -> str | None:
    """Why a reason's counter cannot be its duration in the window, or None."""
    if counter_out_of_window(counted_s, window_s):
        if counted_s < 0:
            return "it went backwards"
        return f"it counted {counted_s:.3g} s in a {window_s:.3g} s window"
    if sampled_s >= _MIN_SAMPLED_S and counted_s < _MIN_COUNTER_SHARE * sampled_s:
        return f"it counted {counted_s:.3g} s where the sampled bits show {sampled_s:.3g} s"
    return None


@dataclass
class _Sampled:
    """Reason seconds from sampled bits: per reason, and any throttling reason at all."""

    known: bool = False
    throttled_s: float = 0.0
    first_s: float | None = None
    last_s: float | None = None
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_REASON_BITS, 0.0))


def _sampled_reasons(every: list[TraceRow], t0: float | None, t1: float | None) -> _Sampled:
    lo = -math.inf if t0 is None else t0
    hi = math.inf if t1 is None else t1
    mask = sum(THROTTLE_BITS.values())
    found = _Sampled()
    for index, row in enumerate(every):
        # The sample's reasons hold until the next sample, clipped to the window;
        # the last sample of the trace holds until t1, or for no time without one.
        if index + 1 < len(every):
            next_s = every[index + 1].t_s
        else:
            next_s = hi if math.isfinite(hi) else row.t_s
        start_s, end_s = max(row.t_s, lo), min(next_s, hi)
        if not (lo <= row.t_s <= hi or end_s > start_s) or row.throttle_reasons is None:
            continue
        found.known = True
        held_s = max(end_s - start_s, 0.0)
        for reason, bit in _REASON_BITS.items():
            if row.throttle_reasons & bit:
                found.seconds[reason] += held_s
        if not row.throttle_reasons & mask:
            continue
        found.throttled_s += held_s
        found.first_s = start_s if found.first_s is None else found.first_s
        found.last_s = max(end_s, start_s)
    return found
