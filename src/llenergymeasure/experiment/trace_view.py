"""The power/thermal trace restricted to the measured window, as result records.

Clock-event reason seconds come from NVML's duration counters where the energy sampler
read them (``counters``), else from the trace's sampled bits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llenergymeasure.energy.throttle import TraceWarning, summarise_thermal, trace_warnings
from llenergymeasure.energy.trace import Trace
from llenergymeasure.records.energy import DevicePower, DeviceThermal, TraceSummary
from llenergymeasure.records.timeseries import TIMESERIES_FILE

__all__ = ["TraceView", "reason_counters"]


def reason_counters(details: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Device -> reason -> seconds from an energy reading's details (a composite's nested)."""
    found: dict[str, dict[str, float]] = {}
    devices = details.get("devices")
    if isinstance(devices, Mapping):
        for device, detail in devices.items():
            seconds = detail.get("clock_event_s") if isinstance(detail, Mapping) else None
            if isinstance(seconds, Mapping) and seconds:
                found[str(device)] = {str(k): float(v) for k, v in seconds.items()}
    for nested in details.values():
        if isinstance(nested, Mapping) and nested is not devices:
            found.update(reason_counters(nested))
    return found


@dataclass(frozen=True)
class TraceView:
    """The trace restricted to the window, with the sampler's reason counters."""

    trace: Trace
    t0: float | None
    t1: float | None
    counters: dict[str, dict[str, float]] = field(default_factory=dict)
    power_sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        trace: Trace,
        energy_details: Mapping[str, Any] | None = None,
        power_sources: Mapping[str, str] | None = None,
    ) -> TraceView:
        return cls(
            trace,
            trace.marks.get("window_start"),
            trace.marks.get("window_end"),
            reason_counters(energy_details or {}),
            dict(power_sources or {}),
        )

    def warnings(self) -> list[TraceWarning]:
        """The trace's measurement warnings over the window."""
        return trace_warnings(self.trace, self.t0, self.t1, self.counters)

    def device_power(self) -> tuple[DevicePower, ...]:
        found = []
        for device in self.trace.devices():
            stats = self.trace.power_stats(device, self.t0, self.t1)
            if stats is not None:
                found.append(DevicePower.read_off(stats, device=device))
        return tuple(found)

    def peak_total_w(self) -> float | None:
        """The highest summed power of all devices at one sampling instant."""
        totals = self.trace.total_power_by_tick(self.t0, self.t1)
        return max(totals) if totals else None

    def thermal(self) -> tuple[DeviceThermal, ...]:
        summaries = summarise_thermal(self.trace, self.t0, self.t1, self.counters)
        return tuple(
            DeviceThermal.read_off(s, first_throttle_s=s.first_s, last_throttle_s=s.last_s)
            for s in summaries.values()
            if s.max_temperature_c is not None or s.throttled_s is not None
        )

    def summary(self) -> TraceSummary:
        return TraceSummary(
            interval_ms=self.trace.interval_ms,
            n_rows=len(self.trace.samples),
            devices=tuple(self.trace.devices()),
            achieved_rate=self.trace.achieved_rate(self.t0, self.t1),
            max_gap_s=self.trace.max_gap_s(self.t0, self.t1),
            warmup_start_s=self.trace.marks.get("warmup_start"),
            window_start_s=self.t0,
            window_end_s=self.t1,
            file=TIMESERIES_FILE if self.trace.samples else None,
            errors=self.trace.errors,
            power_sources=self.power_sources,
        )
