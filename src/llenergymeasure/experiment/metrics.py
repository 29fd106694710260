"""Step 8: turn what the window recorded into metrics, warnings and the result object."""

from __future__ import annotations

import hashlib
import resource
import sys
from collections.abc import Sequence

from llenergymeasure._version import tool_version
from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.energy.trace import Trace
from llenergymeasure.engines.base import ModelInfo, RequestOutput
from llenergymeasure.engines.resolve import model_fingerprint
from llenergymeasure.experiment.baseline import Idle
from llenergymeasure.experiment.compute import compute_result, flops_result
from llenergymeasure.experiment.energy_figures import energy_result
from llenergymeasure.experiment.measurement import Window
from llenergymeasure.experiment.phase_energy import phase_energy
from llenergymeasure.experiment.preflight import Plan
from llenergymeasure.experiment.trace_view import TraceView
from llenergymeasure.experiment.validity import measurement_warnings
from llenergymeasure.records.energy import EnergyResult, PowerResult
from llenergymeasure.records.environment import EnvironmentSnapshot
from llenergymeasure.records.result import (
    ExperimentResult,
    LatencyResult,
    LatencyStats,
    MemoryResult,
    ModelIdentity,
    RequestRecord,
    ThroughputResult,
    TimingResult,
    TokenCounts,
    WarmupResult,
    WindowResult,
)

__all__ = [
    "N_FIRST_TOKEN_IDS",
    "build_result",
    "latency_stats",
    "output_sha256",
    "request_record",
]

_MIB = 2**20
# Generated token ids kept per request in result.json: enough to compare engines' greedy
# outputs at a glance, small enough that a thousand requests stay a small file.
N_FIRST_TOKEN_IDS = 32


def latency_stats(values_ms: Sequence[float]) -> LatencyStats | None:
    """Mean and p50/p90/p99 (linear interpolation); None for no values."""
    return LatencyStats.of(values_ms)


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / _MIB if sys.platform == "darwin" else peak / 1024


def output_sha256(token_ids: Sequence[int]) -> str:
    """SHA-256 of token ids written as comma-separated decimals (``"1,22,333"``)."""
    return hashlib.sha256(",".join(str(int(t)) for t in token_ids).encode()).hexdigest()


def request_record(request: RequestOutput, prompt_id: str) -> RequestRecord:
    """One request in result.json, with its output's identity when the engine returned its ids.

    Ids that do not account for every counted token are not the output, so no digest is kept.
    """
    ids = request.token_ids
    complete = len(ids) == request.n_output_tokens
    return RequestRecord.read_off(
        request,
        prompt_id=prompt_id,
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
    baseline: Idle,
    idle_no_context: Idle = (None, None),
    trace: Trace,
) -> ExperimentResult:
    """The ExperimentResult of one experiment: identity, config, metrics, warnings.

    ``baseline`` and ``idle_no_context`` are each an idle figure or None with the reason.
    """
    config = plan.config
    config_hash = measurement_config_hash(config)
    reqs: tuple[RequestOutput, ...] = window.output.requests
    tokens = _token_counts(len(prompt_ids), reqs)
    n_in, n_out = tokens.n_input_tokens, tokens.n_output_tokens
    s = window.duration_s
    view = TraceView.of(trace, window.energy.details, _power_sources(plan))
    energy = _energy(plan, window, n_out, baseline, idle_no_context)
    compute = compute_result(info, reqs, window.output.batches, s)
    return ExperimentResult(
        experiment_id=f"{window.started_at:%Y%m%dT%H%M%SZ}-{config_hash[:8]}",
        measurement_config_hash=config_hash,
        tool_version=tool_version(),
        engine=config.engine,
        engine_version=info.engine_version,
        engine_args=info.engine_args,
        model=_identity(plan, info),
        config=config,
        window=WindowResult.read_off(window),
        tokens=tokens,
        throughput=_throughput(n_in, n_out, len(reqs), s),
        latency=_latency(window),
        energy=energy,
        power=_power(energy, view, s),
        warmup=warmup,
        flops=flops_result(compute, info, n_in + n_out, n_out, s),
        memory=_memory(window, info),
        timings=timings,
        environment=_with_scope(environment, plan),
        thermal=view.thermal(),
        trace=view.summary(),
        warnings=tuple(measurement_warnings(window, energy, view, plan.warnings, config=config)),
        # a window of several passes numbers its requests on: pass x n_prompts + prompt
        requests=tuple(request_record(r, prompt_ids[r.index % len(prompt_ids)]) for r in reqs),
        timeseries=tuple(trace.to_rows()),
        compute=compute,
        phase_energy=phase_energy(
            energy, trace, window.output.batches, reqs, power_sources=view.power_sources
        ),
    )


def _token_counts(n_prompts: int, reqs: Sequence[RequestOutput]) -> TokenCounts:
    """Prompts in the set, requests completed (every pass) and their tokens."""
    return TokenCounts(
        n_prompts=n_prompts,
        n_completed=len(reqs),
        n_input_tokens=sum(r.n_input_tokens for r in reqs),
        n_output_tokens=sum(r.n_output_tokens for r in reqs),
    )


def _energy(
    plan: Plan, window: Window, n_out: int, baseline: Idle, idle_no_context: Idle
) -> EnergyResult:
    return energy_result(
        window,
        plan.sampler_reason,
        n_output_tokens=n_out,
        n_requests=len(window.output.requests),
        config=plan.config,
        baseline=baseline,
        idle_no_context=idle_no_context,
    )


def _memory(window: Window, info: ModelInfo) -> MemoryResult:
    return MemoryResult(
        peak_host_rss_mib=_peak_rss_mib(),
        peak_device_mib=window.peak_device_mib,
        model_memory_mib=info.model_memory_mib,
    )


def _throughput(n_in: int, n_out: int, n_requests: int, duration_s: float) -> ThroughputResult:
    return ThroughputResult(
        output_tokens_per_s=n_out / duration_s,
        total_tokens_per_s=(n_in + n_out) / duration_s,
        requests_per_s=n_requests / duration_s,
    )


def _identity(plan: Plan, info: ModelInfo) -> ModelIdentity:
    return ModelIdentity(
        name=plan.config.task.model,
        resolved=str(plan.model.path),
        kind=plan.model.kind,
        resolved_label=plan.model.label,
        fingerprint=model_fingerprint(plan.model),
        n_params=info.n_params,
        n_non_embedding_params=info.n_non_embedding_params,
        dtype=info.dtype,
        device=info.device,
    )


def _latency(window: Window) -> LatencyResult:
    """Latency over every request of every pass; None where no request has the figure."""
    reqs = window.output.requests
    return LatencyResult(
        e2e=latency_stats([r.latency_ms for r in reqs]),
        ttft=latency_stats([r.ttft_ms for r in reqs if r.ttft_ms is not None]),
        itl=latency_stats([r.itl_ms for r in reqs if r.itl_ms is not None]),
        definition=window.output.timing_definition,
    )


def _power(energy: EnergyResult, view: TraceView, window_s: float) -> PowerResult:
    device_power = view.device_power()
    return PowerResult(
        mean_w=energy.total_j / window_s if energy.total_j is not None and window_s > 0 else None,
        peak_w=view.peak_total_w(),
        method=(
            "mean: window energy / window duration; peak and per-device: the power trace"
            if device_power
            else "window energy / window duration (no power readings in the trace)"
        ),
        devices=device_power,
    )


def _with_scope(environment: EnvironmentSnapshot, plan: Plan) -> EnvironmentSnapshot:
    """The snapshot with each accelerator marked in or out of this run's scope."""
    measured = {gpu.uuid for gpu in plan.scope_gpus}
    accelerators = tuple(
        {**a, "in_scope": a.get("uuid") in measured} for a in environment.accelerators
    )
    return environment.model_copy(update={"accelerators": accelerators})


def _power_sources(plan: Plan) -> dict[str, str]:
    """Per GPU, what the trace's power column reads, from the telemetry that read it."""
    found: dict[str, str] = {}
    for source in plan.sources:
        found.update(getattr(source, "power_sources", {}))
    return found
