"""The result of one experiment (DESIGN.md §5), as frozen pydantic models.

Units are in field names (``_j``, ``_w``, ``_s``, ``_ms``, ``_mib``); a reading
that was not taken is ``None``, never ``0``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.records.base import FrozenRecord, LatencyStats
from llenergymeasure.records.compute import ComputeResult, PhaseEnergyResult
from llenergymeasure.records.energy import (
    Confidence,
    DeviceThermal,
    EnergyResult,
    PowerResult,
    TraceSummary,
)
from llenergymeasure.records.environment import EnvironmentSnapshot
from llenergymeasure.records.serving import ServingResult

__all__ = [
    "METHODOLOGY_VERSION",
    "SCHEMA_VERSION",
    "ExperimentResult",
    "FlopsResult",
    "LatencyResult",
    "LatencyStats",
    "MeasurementWarning",
    "MemoryResult",
    "Methodology",
    "ModelIdentity",
    "RequestRecord",
    "ThroughputResult",
    "TimingResult",
    "TokenCounts",
    "WarmupResult",
    "WindowResult",
]

SCHEMA_VERSION = "1"
METHODOLOGY_VERSION = "2.0"


class TokenCounts(FrozenRecord):
    n_prompts: int
    n_completed: int
    n_input_tokens: int
    n_output_tokens: int


class ThroughputResult(FrozenRecord):
    output_tokens_per_s: float
    total_tokens_per_s: float
    requests_per_s: float


class LatencyResult(FrozenRecord):
    e2e: LatencyStats | None = Field(description="None when no request completed")
    ttft: LatencyStats | None
    itl: LatencyStats | None
    definition: str = Field(description="how the engine timed TTFT and inter-token latency")


class RequestRecord(FrozenRecord):
    index: int
    prompt_id: str
    n_input_tokens: int
    n_output_tokens: int
    latency_ms: float
    ttft_ms: float | None
    itl_ms: float | None
    first_token_ids: tuple[int, ...] = Field(
        (), description="the first generated token ids (at most 32), to compare engines' outputs"
    )
    output_sha256: str | None = Field(
        None,
        description=(
            "SHA-256 of all generated token ids written as comma-separated decimals; "
            "None when the engine did not return them"
        ),
    )


class WindowResult(FrozenRecord):
    started_at: datetime
    ended_at: datetime
    duration_s: float
    n_passes: int = Field(
        1, description="times the prompt set ran in the window, in order, to reach min_window_s"
    )
    min_window_s: float | None = Field(
        None, description="the minimum window length this run applied (0: none)"
    )


class WarmupResult(FrozenRecord):
    n_runs: int
    mode: Literal["fixed", "convergence", "disabled"]
    converged: bool | None
    final_cv: float | None
    duration_s: float
    thermal_floor_s: float
    n_floor_runs: int = Field(
        0, description="warm-up runs that kept the GPU busy through the thermal floor"
    )


class FlopsResult(FrozenRecord):
    total: float
    per_output_token: float | None = Field(description="None when no output token was made")
    achieved_flops_per_s: float
    method: str
    confidence: Confidence


class MemoryResult(FrozenRecord):
    peak_host_rss_mib: float | None
    peak_device_mib: float | None
    model_memory_mib: float | None


class TimingResult(FrozenRecord):
    """Wall time of each step of the experiment."""

    preflight_s: float
    baseline_s: float
    load_s: float
    prepare_s: float
    warmup_s: float
    measure_s: float = Field(description="the measuring step: the window plus sampler edges")
    window_s: float
    total_s: float


class ModelIdentity(FrozenRecord):
    name: str = Field(description="the model as configured")
    resolved: str = Field(description="the path or id that was loaded")
    kind: str = Field(description="bundled-gguf, folder, gguf or hf-cache")
    resolved_label: str = Field(description="short name used in folder names")
    fingerprint: str | None = Field(
        None, description="content identity of the weights, equal wherever they lie on disk"
    )
    n_params: int | None
    n_non_embedding_params: int | None
    dtype: str | None
    device: str | None


class MeasurementWarning(FrozenRecord):
    code: str
    message: str
    remedy: str


class Methodology(FrozenRecord):
    version: str = METHODOLOGY_VERSION
    window: str = (
        "energy sampler begin -> device sync -> timed inference over all prompts, repeated in "
        "order until min_window_s -> device sync -> sampler end; model load, tokenisation and "
        "warm-up (kept busy through the thermal floor, on prompts outside the measured set) "
        "are outside"
    )
    baseline: str = Field(
        "idle power of the measured devices with the engine loaded (CUDA context and model "
        "resident), before warm-up; adjusted = max(0, measured total - baseline x window); "
        "the no-context idle is a second figure, never subtracted; the headline sums "
        "measured domains only, estimated ones stand apart",
        description="what the baseline is and what adjusted energy subtracts",
    )


class ExperimentResult(FrozenRecord):
    """Everything one experiment measured."""

    schema_version: str = SCHEMA_VERSION
    experiment_id: str
    measurement_config_hash: str
    tool_version: str
    engine: str
    engine_version: str | None
    engine_args: dict[str, Any] = Field(
        default_factory=dict, description="the arguments the engine was actually given"
    )
    model: ModelIdentity
    config: ExperimentConfig
    window: WindowResult
    tokens: TokenCounts
    throughput: ThroughputResult
    latency: LatencyResult
    energy: EnergyResult
    power: PowerResult
    warmup: WarmupResult
    flops: FlopsResult | None
    memory: MemoryResult
    timings: TimingResult
    environment: EnvironmentSnapshot
    thermal: tuple[DeviceThermal, ...] = ()
    trace: TraceSummary | None = None
    warnings: tuple[MeasurementWarning, ...] = ()
    requests: tuple[RequestRecord, ...] = ()
    methodology: Methodology = Methodology()
    compute: ComputeResult | None = Field(
        None, description="FLOPs by phase, MFU and decode MBU; None when the shape is unknown"
    )
    phase_energy: PhaseEnergyResult | None = Field(
        None, description="window energy attributed to prefill and decode (method: attributed)"
    )
    mode: Literal["offline", "serving"] = Field(
        "offline", description="offline: generate over the prompt set; serving: a server under load"
    )
    serving: ServingResult | None = Field(None, description="mode: serving only")
    # The trace rows travel with the result in memory and are written to
    # timeseries.parquet, not into result.json.
    timeseries: tuple[dict[str, Any], ...] = Field(default=(), exclude=True, repr=False)
