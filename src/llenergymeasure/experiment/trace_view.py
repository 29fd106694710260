"""The power/thermal trace restricted to the measured window, as result records."""

from __future__ import annotations

from dataclasses import dataclass

from llenergymeasure.energy.throttle import summarise_thermal
from llenergymeasure.energy.trace import Trace
from llenergymeasure.records.energy import DevicePower, DeviceThermal, TraceSummary
from llenergymeasure.records.timeseries import TIMESERIES_FILE

__all__ = ["TraceView"]


@dataclass(frozen=True)
class TraceView:
    """The trace restricted to the window."""

    trace: Trace
    t0: float | None
    t1: float | None

    @classmethod
    def of(cls, trace: Trace) -> TraceView:
        return cls(trace, trace.marks.get("window_start"), trace.marks.get("window_end"))

    def device_power(self) -> tuple[DevicePower, ...]:
        found = []
        for device in self.trace.devices():
            stats = self.trace.power_stats(device, self.t0, self.t1)
            if stats is not None:
                found.append(
                    DevicePower(
                        device=device,
                        mean_w=stats.mean_w,
                        p50_w=stats.p50_w,
                        p99_w=stats.p99_w,
                        peak_w=stats.peak_w,
                        n_samples=stats.n_samples,
                    )
                )
        return tuple(found)

    def peak_total_w(self) -> float | None:
        """The highest summed power of all devices at one sampling instant."""
        totals = self.trace.total_power_by_tick(self.t0, self.t1)
        return max(totals) if totals else None

    def thermal(self) -> tuple[DeviceThermal, ...]:
        summaries = summarise_thermal(self.trace, self.t0, self.t1)
        return tuple(
            DeviceThermal(
                device=s.device,
                throttled_s=s.throttled_s,
                first_throttle_s=s.first_s,
                last_throttle_s=s.last_s,
                reasons=s.reasons,
                max_temperature_c=s.max_temperature_c,
                min_sm_clock_mhz=s.min_sm_clock_mhz,
                mean_sm_clock_mhz=s.mean_sm_clock_mhz,
                temperature_drift_c=s.temperature_drift_c,
            )
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
        )
