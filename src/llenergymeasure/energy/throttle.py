"""Thermal and throttle summary of a trace, and the measurement warnings a trace can raise.

Throttling is read from NVML clock-event reason bits (DESIGN §4). Only the bits
in :data:`THROTTLE_BITS` count; GPU idle (0x1), application clocks (0x2), sync
boost (0x10) and display clock (0x100) are not throttling and are ignored. A
sample's reasons hold from that sample until the device's next sample (clipped
to the window), so throttled seconds are time, not sample counts, and they are
kept per device, never summed across devices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from llenergymeasure.energy.trace import Trace, TraceRow
from llenergymeasure.records.timeseries import THROTTLE_BITS

__all__ = [
    "THROTTLE_BITS",
    "ThrottleSummary",
    "TraceWarning",
    "summarise_thermal",
    "trace_warnings",
]

MIN_SAMPLES = 10
GAP_FACTOR = 2.0
MAX_DRIFT_C = 10.0


@dataclass(frozen=True)
class ThrottleSummary:
    """One device over one window. A figure the device never reported is None.

    ``throttled_s`` is None when no sample carried reason bits. ``first_s`` and
    ``last_s`` are the start of the first and the end of the last throttled
    stretch (trace time), None when never throttled. ``reasons`` names the bits
    seen, in :data:`THROTTLE_BITS` order. ``temperature_drift_c`` is the last
    minus the first temperature in the window.
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

    @property
    def throttled(self) -> bool:
        """Whether any throttle reason was seen in the window."""
        return bool(self.reasons)


class TraceWarning(NamedTuple):
    """A measurement warning: a stable code, what happened, and what to do about it."""

    code: str
    message: str
    remedy: str


def summarise_thermal(
    trace: Trace, t0: float | None = None, t1: float | None = None
) -> dict[str, ThrottleSummary]:
    """Throttle, temperature and clock summary per device that reports any of them.

    Devices with no temperature, SM clock or reason bits in the window (such as
    ``process``) are left out.
    """
    summaries: dict[str, ThrottleSummary] = {}
    for device in trace.devices():
        inside = trace.rows_between(t0, t1, device=device)
        if not any(
            r.temperature_c is not None
            or r.sm_clock_mhz is not None
            or r.throttle_reasons is not None
            for r in inside
        ):
            continue
        every = [row for row in trace.samples if row.device == device]
        summaries[device] = _summarise(device, every, inside, t0, t1)
    return summaries


def trace_warnings(
    trace: Trace, t0: float | None = None, t1: float | None = None
) -> list[TraceWarning]:
    """Warnings about the trace over ``[t0, t1]``, each with a remedy (at most one per code).

    Codes: ``few_samples``, ``sampler_gaps``, ``temperature_drift``, ``throttling``,
    and ``telemetry_failed`` when a source was dropped.
    """
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
    thermal = summarise_thermal(trace, t0, t1)
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
    throttled = [
        f"{d} {s.throttled_s or 0.0:.2f} s ({', '.join(s.reasons)})"
        for d, s in thermal.items()
        if s.throttled
    ]
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


def _reason_names(bits: int) -> list[str]:
    return [name for name, bit in THROTTLE_BITS.items() if bits & bit]


def _summarise(
    device: str,
    every: list[TraceRow],
    inside: list[TraceRow],
    t0: float | None,
    t1: float | None,
) -> ThrottleSummary:
    lo = -math.inf if t0 is None else t0
    hi = math.inf if t1 is None else t1
    mask = 0
    for bit in THROTTLE_BITS.values():
        mask |= bit
    known = False
    throttled_s = 0.0
    first_s: float | None = None
    last_s: float | None = None
    seen = 0
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
        known = True
        bits = row.throttle_reasons & mask
        if not bits:
            continue
        seen |= bits
        throttled_s += max(end_s - start_s, 0.0)
        first_s = start_s if first_s is None else first_s
        last_s = max(end_s, start_s)
    temperatures = [r.temperature_c for r in inside if r.temperature_c is not None]
    clocks = [r.sm_clock_mhz for r in inside if r.sm_clock_mhz is not None]
    return ThrottleSummary(
        device=device,
        n_samples=len(inside),
        throttled_s=throttled_s if known else None,
        first_s=first_s,
        last_s=last_s,
        reasons=tuple(_reason_names(seen)),
        max_temperature_c=max(temperatures) if temperatures else None,
        min_sm_clock_mhz=min(clocks) if clocks else None,
        mean_sm_clock_mhz=math.fsum(clocks) / len(clocks) if clocks else None,
        temperature_drift_c=temperatures[-1] - temperatures[0] if len(temperatures) > 1 else None,
    )
