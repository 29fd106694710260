"""Step 8: turn what the window recorded into metrics, warnings and the result object."""

from __future__ import annotations

import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llenergymeasure._version import tool_version
from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy.base import EnergyReading
from llenergymeasure.engines.base import ModelInfo, RequestOutput
from llenergymeasure.experiment.measurement import Window
from llenergymeasure.experiment.preflight import Plan
from llenergymeasure.results.models import (
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
    WarmupResult,
    WindowResult,
)

__all__ = [
    "MIN_WINDOW_S",
    "Metrics",
    "build_result",
    "compute_metrics",
    "energy_result",
    "flops_result",
    "latency_stats",
    "measurement_warnings",
]

_MIB = 2**20
_J_PER_KWH = 3.6e6
# Below 10 s, energy counters (~1 mJ resolution, ~10-100 ms update period) and the
# CPU-time clock (10 ms ticks) make up a visible share of the figure.
MIN_WINDOW_S = 10.0


@dataclass(frozen=True)
class Metrics:
    tokens: TokenCounts
    throughput: ThroughputResult
    latency: LatencyResult
    energy: EnergyResult
    power: PowerResult
    flops: FlopsResult | None
    memory: MemoryResult
    requests: tuple[RequestRecord, ...]


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
    reading: EnergyReading,
    sampler_reason: str,
    *,
    n_output_tokens: int,
    n_requests: int,
    config: ExperimentConfig,
) -> EnergyResult:
    """Per-token and per-request energy, CO2 when an intensity is set; None where unknown."""
    total = reading.total_j
    intensity = config.measurement.carbon_intensity_g_per_kwh
    co2 = None
    if total is not None and intensity is not None:
        co2 = total / _J_PER_KWH * intensity * config.measurement.pue
    return EnergyResult(
        sampler=reading.sampler,
        sampler_reason=sampler_reason,
        method=reading.method,
        confidence=reading.confidence if total is not None else None,
        domains=reading.domains,
        total_j=total,
        adjusted_j=None,
        baseline=None,
        j_per_output_token=total / n_output_tokens
        if total is not None and n_output_tokens
        else None,
        j_per_request=total / n_requests if total is not None and n_requests else None,
        co2_g=co2,
        details=dict(reading.details),
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


def compute_metrics(
    window: Window,
    info: ModelInfo,
    config: ExperimentConfig,
    sampler_reason: str,
    prompt_ids: Sequence[str],
) -> Metrics:
    """All metrics of one window."""
    reqs: tuple[RequestOutput, ...] = window.output.requests
    n_in = sum(r.n_input_tokens for r in reqs)
    n_out = sum(r.n_output_tokens for r in reqs)
    s = window.duration_s
    e2e = latency_stats([r.latency_ms for r in reqs])
    if e2e is None:
        e2e = LatencyStats(mean_ms=0.0, p50_ms=0.0, p90_ms=0.0, p99_ms=0.0, n=0)
    energy = energy_result(
        window.energy, sampler_reason, n_output_tokens=n_out, n_requests=len(reqs), config=config
    )
    mean_w = energy.total_j / s if energy.total_j is not None and s > 0 else None
    return Metrics(
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
            mean_w=mean_w,
            peak_w=None,
            method="window energy / window duration (no power trace from this sampler)",
        ),
        flops=flops_result(info, n_in + n_out, n_out, s),
        memory=MemoryResult(
            peak_host_rss_mib=_peak_rss_mib(),
            peak_device_mib=window.peak_device_mib,
            model_memory_mib=info.model_memory_mib,
        ),
        requests=tuple(
            RequestRecord(
                index=r.index,
                prompt_id=prompt_ids[r.index],
                n_input_tokens=r.n_input_tokens,
                n_output_tokens=r.n_output_tokens,
                latency_ms=r.latency_ms,
                ttft_ms=r.ttft_ms,
                itl_ms=r.itl_ms,
            )
            for r in reqs
        ),
    )


def measurement_warnings(window: Window, energy: EnergyResult) -> list[MeasurementWarning]:
    """The validity warnings of DESIGN §4 that apply to this window, each with a remedy."""
    found = []
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
    for text in window.energy.warnings:
        found.append(
            MeasurementWarning(code="energy_sampler", message=text, remedy="see the message")
        )
    return found


def build_result(
    plan: Plan,
    info: ModelInfo,
    prompt_ids: Sequence[str],
    warmup: WarmupResult,
    window: Window,
    timings: TimingResult,
    environment: EnvironmentSnapshot,
) -> ExperimentResult:
    """The ExperimentResult of one experiment: identity, config, metrics, warnings."""
    config = plan.config
    config_hash = measurement_config_hash(config)
    metrics = compute_metrics(window, info, config, plan.sampler_reason, prompt_ids)
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
            n_params=info.n_params,
            n_non_embedding_params=info.n_non_embedding_params,
            dtype=info.dtype,
            device=info.device,
        ),
        config=config,
        window=WindowResult(
            started_at=window.started_at, ended_at=window.ended_at, duration_s=window.duration_s
        ),
        tokens=metrics.tokens,
        throughput=metrics.throughput,
        latency=metrics.latency,
        energy=metrics.energy,
        power=metrics.power,
        warmup=warmup,
        flops=metrics.flops,
        memory=metrics.memory,
        timings=timings,
        environment=environment,
        warnings=tuple(measurement_warnings(window, metrics.energy)),
        requests=metrics.requests,
    )
