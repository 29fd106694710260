"""Step 8: turn what the window recorded into metrics, warnings and the result object."""

from __future__ import annotations

import hashlib
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from llenergymeasure._version import tool_version
from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.config.loading import carbon_intensity
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy.baseline import Baseline
from llenergymeasure.energy.throttle import summarise_thermal, trace_warnings
from llenergymeasure.energy.trace import Trace
from llenergymeasure.engines.base import ModelInfo, RequestOutput
from llenergymeasure.engines.resolve import model_fingerprint
from llenergymeasure.experiment.measurement import Window
from llenergymeasure.experiment.preflight import Plan
from llenergymeasure.results.models import (
    BaselineResult,
    DevicePower,
    DeviceThermal,
    EnergyResult,
    EnvironmentSnapshot,
    ExperimentResult,
    FlopsResult,
    LatencyResult,
    LatencyStats,
    MeasurementWarning,
    MemoryResult,
    ModelIdentity,
    PowerResult,
    RequestRecord,
    ThroughputResult,
    TimingResult,
    TokenCounts,
    TraceSummary,
    WarmupResult,
    WindowResult,
)
from llenergymeasure.results.timeseries import TIMESERIES_FILE

__all__ = [
    "MIN_BASELINE_S",
    "MIN_WINDOW_S",
    "N_FIRST_TOKEN_IDS",
    "build_result",
    "energy_result",
    "flops_result",
    "latency_stats",
    "measurement_warnings",
    "output_sha256",
    "request_record",
]

_MIB = 2**20
_J_PER_KWH = 3.6e6
# Below 10 s, energy counters (~1 mJ resolution, ~10-100 ms update period) and the
# CPU-time clock (10 ms ticks) make up a visible share of the figure.
MIN_WINDOW_S = 10.0
# A shorter idle baseline does not average out the device's power-management noise.
MIN_BASELINE_S = 30.0
# Idle power above half the window's mean power: the adjusted figure is mostly subtraction.
MAX_BASELINE_SHARE = 0.5
# Generated token ids kept per request in result.json: enough to compare engines' greedy
# outputs at a glance, small enough that a thousand requests stay a small file.
N_FIRST_TOKEN_IDS = 32


def latency_stats(values_ms: Sequence[float]) -> LatencyStats | None:
    """Mean and p50/p90/p99 (linear interpolation); None for no values."""
    if not values_ms:
        return None
    arr = np.asarray(values_ms, dtype=float)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return LatencyStats(
        mean_ms=float(arr.mean()),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        n=len(arr),
    )


def energy_result(
    window: Window,
    sampler_reason: str,
    *,
    n_output_tokens: int,
    n_requests: int,
    config: ExperimentConfig,
    baseline: Baseline | None = None,
    baseline_note: str | None = None,
    now: datetime | None = None,
) -> EnergyResult:
    """Gross, static and adjusted energy, per token and per request, CO2; None where unknown."""
    reading = window.energy
    total = reading.total_j
    static = adjusted = None
    if baseline is not None and total is not None:
        measured = {d.domain for d in reading.domains if d.energy_j is not None}
        idle_w = sum(w for domain, w in baseline.power_w_by_domain.items() if domain in measured)
        static = idle_w * window.duration_s
        adjusted = max(0.0, total - static)
    intensity = carbon_intensity(config)
    factor = intensity * config.measurement.pue / _J_PER_KWH if intensity is not None else None
    return EnergyResult(
        sampler=reading.sampler,
        sampler_reason=sampler_reason,
        method=reading.method,
        confidence=reading.confidence if total is not None else None,
        domains=reading.domains,
        total_j=total,
        adjusted_j=adjusted,
        baseline=_baseline_result(baseline, now or datetime.now(timezone.utc)),
        baseline_note=baseline_note,
        static_j=static,
        j_per_output_token=total / n_output_tokens
        if total is not None and n_output_tokens
        else None,
        j_per_request=total / n_requests if total is not None and n_requests else None,
        co2_g=total * factor if total is not None and factor is not None else None,
        co2_adjusted_g=adjusted * factor if adjusted is not None and factor is not None else None,
        carbon_intensity_g_per_kwh=intensity,
        details=dict(reading.details),
    )


def _baseline_result(baseline: Baseline | None, now: datetime) -> BaselineResult | None:
    if baseline is None:
        return None
    return BaselineResult(
        power_w=baseline.power_w,
        power_w_by_domain=dict(baseline.power_w_by_domain),
        duration_s=baseline.duration_s,
        n_samples=baseline.n_samples,
        std_w=baseline.std_w,
        method=baseline.method,
        strategy=baseline.strategy,
        measured_at=baseline.measured_at,
        age_s=baseline.age_s(now),
        note=baseline.note,
    )


def flops_result(
    info: ModelInfo, n_tokens: int, n_output: int, window_s: float
) -> FlopsResult | None:
    """2 x non-embedding parameters x processed tokens (prefill + decode)."""
    if info.n_non_embedding_params is None or n_tokens == 0:
        return None
    total = 2.0 * info.n_non_embedding_params * n_tokens
    return FlopsResult(
        total=total,
        per_output_token=total / n_output if n_output else total,
        achieved_flops_per_s=total / window_s if window_s > 0 else 0.0,
        method=(
            "2 x non-embedding parameters x (input + output tokens); attention-score FLOPs "
            "and padding excluded"
        ),
        confidence="medium",
    )


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / _MIB if sys.platform == "darwin" else peak / 1024


@dataclass(frozen=True)
class _TraceView:
    """The trace restricted to the window."""

    trace: Trace
    t0: float | None
    t1: float | None

    @classmethod
    def of(cls, trace: Trace) -> _TraceView:
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


def measurement_warnings(
    window: Window,
    energy: EnergyResult,
    view: _TraceView,
    plan_warnings: Sequence[str] = (),
) -> list[MeasurementWarning]:
    """The validity warnings of DESIGN §4 that apply to this window, each with a remedy."""
    found = [
        MeasurementWarning(code="host_setup", message=text, remedy="see the message")
        for text in plan_warnings
    ]
    if energy.method == "estimated":
        tdp = energy.details.get("tdp_source", "unknown")
        found.append(
            MeasurementWarning(
                code="estimated_energy",
                message=(
                    "energy is an estimate (process CPU time x TDP per thread, TDP from "
                    f"{tdp}), not a measurement; confidence low"
                ),
                remedy=(
                    "run on a host with RAPL or an NVIDIA GPU, or set cpu_tdp_w in the user config"
                ),
            )
        )
    if energy.total_j is None:
        disabled = energy.sampler == "none"
        found.append(
            MeasurementWarning(
                code="no_energy",
                message="no energy figure for this run"
                + (" (energy measurement disabled)" if disabled else " (no reading in the window)"),
                remedy=(
                    "set measurement.energy_sampler to auto"
                    if disabled
                    else "lengthen the window: more prompts or more output tokens"
                ),
            )
        )
    if window.duration_s < MIN_WINDOW_S:
        found.append(
            MeasurementWarning(
                code="short_window",
                message=(
                    f"measured window is {window.duration_s:.1f} s, under {MIN_WINDOW_S:.0f} s: "
                    "sensor resolution is a visible share of the energy figure"
                ),
                remedy="use more prompts or more output tokens",
            )
        )
    baseline = energy.baseline
    if baseline is not None and baseline.duration_s < MIN_BASELINE_S:
        found.append(
            MeasurementWarning(
                code="short_baseline",
                message=(
                    f"baseline measured over {baseline.duration_s:.1f} s, "
                    f"under {MIN_BASELINE_S:.0f} s"
                ),
                remedy="set measurement.baseline.duration_s to 30 or more",
            )
        )
    if baseline is not None and energy.total_j and window.duration_s > 0:
        mean_w = energy.total_j / window.duration_s
        if baseline.power_w > MAX_BASELINE_SHARE * mean_w:
            found.append(
                MeasurementWarning(
                    code="high_baseline",
                    message=(
                        f"idle power ({baseline.power_w:.1f} W) is over half the window's mean "
                        f"power ({mean_w:.1f} W): the adjusted energy is mostly subtraction"
                    ),
                    remedy=(
                        "use a larger batch or model so the device is busier, "
                        "or report gross energy"
                    ),
                )
            )
    for w in trace_warnings(view.trace, view.t0, view.t1):
        found.append(MeasurementWarning(code=w.code, message=w.message, remedy=w.remedy))
    for text in window.energy.warnings:
        found.append(
            MeasurementWarning(code="energy_sampler", message=text, remedy="see the message")
        )
    return found


def output_sha256(token_ids: Sequence[int]) -> str:
    """SHA-256 of token ids written as comma-separated decimals (``"1,22,333"``)."""
    return hashlib.sha256(",".join(str(int(t)) for t in token_ids).encode()).hexdigest()


def request_record(request: RequestOutput, prompt_id: str) -> RequestRecord:
    """One request in result.json, with its output's identity when the engine returned its ids.

    Ids that do not account for every counted token are not the output, so no digest is kept.
    """
    ids = request.token_ids
    complete = len(ids) == request.n_output_tokens
    return RequestRecord(
        index=request.index,
        prompt_id=prompt_id,
        n_input_tokens=request.n_input_tokens,
        n_output_tokens=request.n_output_tokens,
        latency_ms=request.latency_ms,
        ttft_ms=request.ttft_ms,
        itl_ms=request.itl_ms,
        first_token_ids=tuple(int(t) for t in ids[:N_FIRST_TOKEN_IDS]) if complete else (),
        output_sha256=output_sha256(ids) if complete else None,
    )


def build_result(
    plan: Plan,
    info: ModelInfo,
    prompt_ids: Sequence[str],
    *,
    warmup: WarmupResult,
    window: Window,
    timings: TimingResult,
    environment: EnvironmentSnapshot,
    baseline: Baseline | None,
    baseline_note: str | None,
    trace: Trace,
) -> ExperimentResult:
    """The ExperimentResult of one experiment: identity, config, metrics, warnings."""
    config = plan.config
    config_hash = measurement_config_hash(config)
    reqs: tuple[RequestOutput, ...] = window.output.requests
    n_in = sum(r.n_input_tokens for r in reqs)
    n_out = sum(r.n_output_tokens for r in reqs)
    s = window.duration_s
    view = _TraceView.of(trace)
    energy = energy_result(
        window,
        plan.sampler_reason,
        n_output_tokens=n_out,
        n_requests=len(reqs),
        config=config,
        baseline=baseline,
        baseline_note=baseline_note,
    )
    device_power = view.device_power()
    e2e = latency_stats([r.latency_ms for r in reqs]) or LatencyStats(
        mean_ms=0.0, p50_ms=0.0, p90_ms=0.0, p99_ms=0.0, n=0
    )
    return ExperimentResult(
        experiment_id=f"{window.started_at:%Y%m%dT%H%M%SZ}-{config_hash[:8]}",
        measurement_config_hash=config_hash,
        tool_version=tool_version(),
        engine=config.engine,
        engine_version=info.engine_version,
        engine_args=info.engine_args,
        model=ModelIdentity(
            name=config.task.model,
            resolved=str(plan.model.path),
            kind=plan.model.kind,
            resolved_label=plan.model.label,
            fingerprint=model_fingerprint(plan.model),
            n_params=info.n_params,
            n_non_embedding_params=info.n_non_embedding_params,
            dtype=info.dtype,
            device=info.device,
        ),
        config=config,
        window=WindowResult(started_at=window.started_at, ended_at=window.ended_at, duration_s=s),
        tokens=TokenCounts(
            n_prompts=len(prompt_ids),
            n_completed=len(reqs),
            n_input_tokens=n_in,
            n_output_tokens=n_out,
        ),
        throughput=ThroughputResult(
            output_tokens_per_s=n_out / s,
            total_tokens_per_s=(n_in + n_out) / s,
            requests_per_s=len(reqs) / s,
        ),
        latency=LatencyResult(
            e2e=e2e,
            ttft=latency_stats([r.ttft_ms for r in reqs if r.ttft_ms is not None]),
            itl=latency_stats([r.itl_ms for r in reqs if r.itl_ms is not None]),
            definition=window.output.timing_definition,
        ),
        energy=energy,
        power=PowerResult(
            mean_w=energy.total_j / s if energy.total_j is not None and s > 0 else None,
            peak_w=view.peak_total_w(),
            method=(
                "mean: window energy / window duration; peak and per-device: the power trace"
                if device_power
                else "window energy / window duration (no power readings in the trace)"
            ),
            devices=device_power,
        ),
        warmup=warmup,
        flops=flops_result(info, n_in + n_out, n_out, s),
        memory=MemoryResult(
            peak_host_rss_mib=_peak_rss_mib(),
            peak_device_mib=window.peak_device_mib,
            model_memory_mib=info.model_memory_mib,
        ),
        timings=timings,
        environment=environment,
        thermal=view.thermal(),
        trace=view.summary(),
        warnings=tuple(measurement_warnings(window, energy, view, plan.warnings)),
        requests=tuple(request_record(r, prompt_ids[r.index]) for r in reqs),
        timeseries=tuple(trace.to_rows()),
    )
