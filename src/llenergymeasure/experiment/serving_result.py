"""The result of a serving experiment: the load's records, the window's energy, warnings."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llenergymeasure._version import tool_version
from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.energy.trace import Trace
from llenergymeasure.engines.base import GenerationOutput, ModelInfo
from llenergymeasure.engines.model_files import count_params, weights_mib
from llenergymeasure.engines.resolve import converted_cache_dir, model_fingerprint
from llenergymeasure.experiment.baseline import Idle
from llenergymeasure.experiment.compute import flops_result
from llenergymeasure.experiment.energy_figures import energy_result
from llenergymeasure.experiment.measurement import Window
from llenergymeasure.experiment.serving_load import Driven, Server
from llenergymeasure.experiment.serving_plan import ServingPlan
from llenergymeasure.experiment.trace_view import TraceView
from llenergymeasure.experiment.validity import measurement_warnings
from llenergymeasure.records.atomic import atomic_write_text
from llenergymeasure.records.energy import EnergyResult, PowerResult
from llenergymeasure.records.environment import EnvironmentSnapshot
from llenergymeasure.records.result import (
    ExperimentResult,
    LatencyResult,
    MeasurementWarning,
    MemoryResult,
    Methodology,
    ModelIdentity,
    ThroughputResult,
    TimingResult,
    TokenCounts,
    WarmupResult,
    WindowResult,
)
from llenergymeasure.records.serving import (
    SERVING_METHODOLOGY_WINDOW,
    SERVING_TIMING,
    ServingRequestRecord,
    ServingResult,
    SteadyWindow,
)
from llenergymeasure.serving.load import LoadRecord
from llenergymeasure.serving.metrics import (
    TokenCounter,
    arrival_summary,
    finished_records,
    goodput,
    serving_latency,
    steady_window,
)

__all__ = ["PARTIAL_FILE", "build_serving_result", "write_partial"]

PARTIAL_FILE = "partial.json"


def build_serving_result(
    plan: ServingPlan,
    server: Server,
    driven: Driven,
    *,
    warmup: WarmupResult,
    timings: TimingResult,
    environment: EnvironmentSnapshot,
    baseline: Idle,
    idle_no_context: Idle = (None, None),
    trace: Trace,
    count_tokens: TokenCounter | None,
) -> ExperimentResult:
    """The ExperimentResult of a serving run: the standard sections over the window,
    and the serving section with the load's own figures."""
    requests = finished_records(driven.record, plan.serving.slo, count_tokens)
    window = steady_window(
        driven.record, requests, started_at=driven.load_started_at, min_window_s=plan.min_window_s
    )
    measured = _measured(window, driven)
    energy = energy_result(
        measured,
        plan.sampler_reason,
        n_output_tokens=round(window.n_output_tokens),
        n_requests=window.n_completed,
        config=plan.config,
        baseline=baseline,
        idle_no_context=idle_no_context,
    )
    serving = _serving(plan, server, driven, requests, window, energy, warmup)
    view = TraceView.of(trace)
    return ExperimentResult(
        **_identity(plan, window),
        config=plan.config,
        window=WindowResult(
            started_at=measured.started_at,
            ended_at=measured.ended_at,
            duration_s=measured.duration_s,
        ),
        **_figures(plan, serving),
        energy=energy,
        power=_power(serving, view),
        warmup=warmup,
        timings=timings,
        environment=environment,
        thermal=view.thermal(),
        trace=view.summary(),
        warnings=(
            *measurement_warnings(measured, energy, view, plan.warnings),
            *serving_warnings(serving),
        ),
        methodology=Methodology(window=SERVING_METHODOLOGY_WINDOW),
        mode="serving",
        serving=serving,
        timeseries=tuple(trace.to_rows()),
    )


def _power(serving: ServingResult, view: TraceView) -> PowerResult:
    return PowerResult(
        mean_w=serving.mean_power_w,
        peak_w=view.peak_total_w(),
        method="mean: window energy / window duration; peak and per-device: the power trace",
        devices=view.device_power(),
    )


def _measured(window: SteadyWindow, driven: Driven) -> Window:
    """The steady-state window as the offline spine's Window, for its energy and warnings."""
    return Window(
        started_at=window.started_at,
        ended_at=window.ended_at,
        duration_s=window.duration_s,
        output=GenerationOutput(requests=(), timing_definition=SERVING_TIMING),
        energy=driven.energy,
        peak_device_mib=None,
    )


def _serving(
    plan: ServingPlan,
    server: Server,
    driven: Driven,
    requests: tuple[ServingRequestRecord, ...],
    window: SteadyWindow,
    energy: EnergyResult,
    warmup: WarmupResult,
) -> ServingResult:
    """The serving section: rates, window, latencies, goodput and energy per request."""
    seconds = window.duration_s
    # the measured headline; on a host with nothing measured, the estimate, labelled as one
    total, per_request, method = energy.total_j, energy.j_per_request, energy.method
    if total is None and energy.estimated is not None:
        total, per_request = energy.estimated.total_j, energy.estimated.j_per_request
        method = energy.estimated.method
    return ServingResult(
        server=server.info,
        api=plan.serving.api,
        arrival=arrival_summary(
            plan.serving,
            driven.record,
            seed=plan.seed,
            period_s=_period_s(plan, driven.record),
            scheduled_rate_per_s=plan.schedule.rate_per_s if plan.schedule else None,
        ),
        window=window,
        latency=serving_latency(requests),
        goodput=goodput(requests, plan.serving.slo, window),
        queueing=driven.queueing,
        requests_per_s=window.n_completed / seconds if seconds > 0 else 0.0,
        output_tokens_per_s=window.n_output_tokens / seconds if seconds > 0 else 0.0,
        j_per_request=per_request,
        j_per_output_token=(
            total / window.n_output_tokens
            if total is not None and window.n_output_tokens > 0
            else None
        ),
        mean_power_w=total / seconds if total is not None and seconds > 0 else None,
        energy_method=method,
        n_failed=sum(r.error is not None for r in requests),
        n_warmup_requests=warmup.n_runs,
        requests=requests,
    )


def _identity(plan: ServingPlan, window: SteadyWindow) -> dict[str, Any]:
    """Who ran what: the experiment id, hashes, engine and model."""
    config_hash = measurement_config_hash(plan.config)
    launched = plan.serving.server == "launch"
    return {
        "experiment_id": f"{window.started_at:%Y%m%dT%H%M%SZ}-{config_hash[:8]}",
        "measurement_config_hash": config_hash,
        "tool_version": tool_version(),
        "engine": plan.config.engine if launched else "endpoint",
        "engine_version": None,
        "model": _model_identity(plan, _model_info(plan)),
    }


def _figures(plan: ServingPlan, serving: ServingResult) -> dict[str, Any]:
    """Tokens, throughput, latency, FLOPs and memory over the window."""
    window, seconds = serving.window, serving.window.duration_s
    n_in = sum(
        r.n_input_tokens or 0
        for r in serving.requests
        if r.done_s is not None and window.start_s <= r.done_s < window.end_s
    )
    n_out = round(window.n_output_tokens)
    info = _model_info(plan)
    latency = serving.latency
    return {
        "engine_args": {"server_command": list(serving.server.command)},
        "tokens": TokenCounts(
            n_prompts=len(plan.prompts),
            n_completed=window.n_completed,
            n_input_tokens=n_in,
            n_output_tokens=n_out,
        ),
        "throughput": ThroughputResult(
            output_tokens_per_s=serving.output_tokens_per_s,
            total_tokens_per_s=(n_in + window.n_output_tokens) / seconds if seconds > 0 else 0.0,
            requests_per_s=serving.requests_per_s,
        ),
        "latency": LatencyResult(
            e2e=latency.e2e, ttft=latency.ttft, itl=latency.itl, definition=SERVING_TIMING
        ),
        "flops": flops_result(None, info, n_in + n_out, n_out, seconds),
        "memory": MemoryResult(
            peak_host_rss_mib=None, peak_device_mib=None, model_memory_mib=info.model_memory_mib
        ),
    }


def _period_s(plan: ServingPlan, record: LoadRecord) -> float:
    if plan.schedule is not None:
        return plan.schedule.period_s
    return record.window_end_s or 0.0


def _model_info(plan: ServingPlan) -> ModelInfo:
    """The model's size from its files, when they are on this machine."""
    folder = None
    if plan.model is not None:
        folder = converted_cache_dir(plan.model) if plan.model.is_gguf else plan.model.path
    n_params = n_non_embedding = None
    memory = None
    # the server's dtype is known only when the config names one
    dtype = plan.config.vllm.dtype if plan.config.vllm is not None else None
    if folder is not None and folder.is_dir():
        n_params, n_non_embedding = count_params(folder)
        memory = weights_mib(folder, dtype) if dtype is not None and dtype != "auto" else None
    device = ",".join(plan.devices)
    return ModelInfo(n_params, n_non_embedding, dtype, device, None, model_memory_mib=memory)


def _model_identity(plan: ServingPlan, info: ModelInfo) -> ModelIdentity:
    model = plan.model
    return ModelIdentity(
        name=plan.model_name,
        resolved=str(model.path) if model is not None else str(plan.serving.endpoint),
        kind=model.kind if model is not None else "endpoint",
        resolved_label=model.label if model is not None else plan.model_name.split("/")[-1],
        fingerprint=model_fingerprint(model) if model is not None else None,
        n_params=info.n_params,
        n_non_embedding_params=info.n_non_embedding_params,
        dtype=plan.config.vllm.dtype if plan.config.vllm is not None else None,
        device=info.device,
    )


def serving_warnings(serving: ServingResult) -> list[MeasurementWarning]:
    """What makes a serving figure weaker than it looks, each with its remedy."""
    found = []
    arrival, window = serving.arrival, serving.window
    if arrival.fell_behind:
        found.append(
            MeasurementWarning(
                code="generator_behind",
                message=(
                    f"the load generator (not the server) fell behind its schedule: "
                    f"{arrival.achieved_rate_per_s or 0:.3f} req/s dispatched against "
                    f"{arrival.scheduled_rate_per_s or 0:.3f} scheduled"
                ),
                remedy="lower the rate, or run llem on a host with spare CPU",
            )
        )
    if window.start_rule == "deadline":
        found.append(
            MeasurementWarning(
                code="no_steady_state",
                message=(
                    "the in-flight request count had not settled when the window had to "
                    f"start ({window.start_s:.1f} s): the offered load may exceed what the "
                    "server can serve"
                ),
                remedy="lower the rate, or lengthen serving.duration_s",
            )
        )
    if not window.meets_min_window:
        found.append(
            MeasurementWarning(
                code="below_min_window",
                message=(
                    f"the steady-state window is {window.duration_s:.1f} s, under "
                    f"measurement.min_window_s ({window.min_window_s:g} s)"
                ),
                remedy="lengthen serving.duration_s or raise n_requests",
            )
        )
    found.extend(_request_warnings(serving.n_failed, serving.requests))
    return found


def _request_warnings(
    n_failed: int, requests: Sequence[ServingRequestRecord]
) -> list[MeasurementWarning]:
    found = []
    if n_failed:
        first = next(r.error for r in requests if r.error is not None)
        found.append(
            MeasurementWarning(
                code="failed_requests",
                message=f"{n_failed} of {len(requests)} requests failed; the first: {first}",
                remedy="see the server's log",
            )
        )
    if any(r.output_tokens_source == "chunks" for r in requests):
        found.append(
            MeasurementWarning(
                code="tokens_from_chunks",
                message="the server reported no token usage and no tokenizer was found: "
                "output tokens are counted as streamed chunks",
                remedy="use a server that reports usage, or make task.model a local model",
            )
        )
    return found


def write_partial(
    requests: Sequence[ServingRequestRecord], reason: str, folder: Path | None
) -> Path:
    """Keep what a failed load recorded, marked incomplete; returns the file written."""
    target = folder or Path(tempfile.mkdtemp(prefix="llem-serving-"))
    path = target / PARTIAL_FILE
    data = {
        "complete": False,
        "reason": reason,
        "written_at": datetime.now(timezone.utc).isoformat(),
        "n_requests": len(requests),
        "requests": [r.model_dump(mode="json") for r in requests],
    }
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path
