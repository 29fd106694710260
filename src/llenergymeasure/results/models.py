"""Result models (DESIGN.md §5): what one experiment measured, as frozen pydantic models.

Units are in field names (``_j``, ``_w``, ``_s``, ``_ms``, ``_mib``); a reading
that was not taken is ``None``, never ``0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llenergymeasure.config.models import ExperimentConfig

__all__ = [
    "METHODOLOGY_VERSION",
    "SCHEMA_VERSION",
    "Availability",
    "BaselineResult",
    "DevicePower",
    "DeviceThermal",
    "DomainEnergy",
    "EnergyResult",
    "EnvironmentSnapshot",
    "ExperimentResult",
    "FlopsResult",
    "LatencyResult",
    "LatencyStats",
    "MeasurementWarning",
    "MemoryResult",
    "Methodology",
    "ModelIdentity",
    "PowerResult",
    "RequestRecord",
    "ThroughputResult",
    "TimingResult",
    "TokenCounts",
    "TraceSummary",
    "WarmupResult",
    "WindowResult",
]

SCHEMA_VERSION = "1"
METHODOLOGY_VERSION = "1.0"

EnergyMethod = Literal["counter", "integrated", "estimated"]
Confidence = Literal["high", "medium", "low"]


@dataclass(frozen=True)
class Availability:
    """Whether a plugin (engine or energy sampler) can run on this host, and why not."""

    available: bool
    reason: str
    version: str | None = None


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DomainEnergy(_Frozen):
    """Energy of one domain (``gpu:0``, ``cpu:0``, ``dram:0``) over the window."""

    domain: str
    energy_j: float | None
    method: EnergyMethod
    source: str = Field(description="the energy sampler that produced the figure, e.g. `estimate`")


class BaselineResult(_Frozen):
    """Idle power measured before the model was loaded."""

    power_w: float
    power_w_by_domain: dict[str, float]
    duration_s: float
    n_samples: int
    std_w: float | None
    method: str
    strategy: str
    measured_at: datetime
    age_s: float
    note: str


class EnergyResult(_Frozen):
    """Energy over the measured window, with how it was obtained."""

    sampler: str = Field(description="energy sampler used, or `none`")
    sampler_reason: str = Field(description="why this sampler was chosen")
    method: EnergyMethod | None
    confidence: Confidence | None
    domains: tuple[DomainEnergy, ...] = ()
    total_j: float | None
    adjusted_j: float | None = Field(
        description="total minus baseline power x window; None without a baseline"
    )
    baseline: BaselineResult | None = None
    baseline_note: str | None = Field(None, description="why there is no baseline, if none")
    static_j: float | None = Field(
        None, description="baseline power x window: the share the idle device would have used"
    )
    j_per_output_token: float | None
    j_per_request: float | None = Field(
        description="window energy / completed requests; no per-request attribution inside a batch"
    )
    co2_g: float | None = None
    co2_adjusted_g: float | None = None
    carbon_intensity_g_per_kwh: float | None = None
    details: dict[str, Any] = Field(
        default_factory=dict, description="sampler-specific provenance, e.g. the TDP used"
    )


class DevicePower(_Frozen):
    """Power statistics of one device over the window, from the trace."""

    device: str
    mean_w: float
    p50_w: float
    p99_w: float
    peak_w: float
    n_samples: int


class PowerResult(_Frozen):
    mean_w: float | None
    peak_w: float | None
    method: str
    devices: tuple[DevicePower, ...] = ()


class DeviceThermal(_Frozen):
    """Temperature, clocks and throttling of one device over the window."""

    device: str
    throttled_s: float | None
    first_throttle_s: float | None
    last_throttle_s: float | None
    reasons: tuple[str, ...]
    max_temperature_c: float | None
    min_sm_clock_mhz: float | None
    mean_sm_clock_mhz: float | None
    temperature_drift_c: float | None


class TraceSummary(_Frozen):
    """The background power/thermal trace; times are seconds from its start."""

    interval_ms: int
    n_rows: int
    devices: tuple[str, ...]
    achieved_rate: float | None = Field(description="samples per second / requested, in the window")
    max_gap_s: float | None
    warmup_start_s: float | None
    window_start_s: float | None
    window_end_s: float | None
    file: str | None = Field(None, description="timeseries.parquet next to result.json")
    errors: tuple[str, ...] = ()


class TokenCounts(_Frozen):
    n_prompts: int
    n_completed: int
    n_input_tokens: int
    n_output_tokens: int


class ThroughputResult(_Frozen):
    output_tokens_per_s: float
    total_tokens_per_s: float
    requests_per_s: float


class LatencyStats(_Frozen):
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    n: int


class LatencyResult(_Frozen):
    e2e: LatencyStats
    ttft: LatencyStats | None
    itl: LatencyStats | None
    definition: str = Field(description="how the engine timed TTFT and inter-token latency")


class RequestRecord(_Frozen):
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


class WindowResult(_Frozen):
    started_at: datetime
    ended_at: datetime
    duration_s: float


class WarmupResult(_Frozen):
    n_runs: int
    mode: Literal["fixed", "convergence", "disabled"]
    converged: bool | None
    final_cv: float | None
    duration_s: float
    thermal_floor_s: float


class FlopsResult(_Frozen):
    total: float
    per_output_token: float
    achieved_flops_per_s: float
    method: str
    confidence: Confidence


class MemoryResult(_Frozen):
    peak_host_rss_mib: float | None
    peak_device_mib: float | None
    model_memory_mib: float | None


class TimingResult(_Frozen):
    """Wall time of each step of the experiment."""

    preflight_s: float
    baseline_s: float
    load_s: float
    prepare_s: float
    warmup_s: float
    measure_s: float = Field(description="the measuring step: the window plus sampler edges")
    window_s: float
    total_s: float


class ModelIdentity(_Frozen):
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


class MeasurementWarning(_Frozen):
    code: str
    message: str
    remedy: str


class EnvironmentSnapshot(_Frozen):
    os: str
    kernel: str
    hostname: str
    cpu_model: str | None
    n_cpus_logical: int | None
    n_cpus_physical: int | None
    memory_total_mib: float | None
    python: str
    packages: dict[str, str | None]
    accelerators: tuple[dict[str, Any], ...] = ()
    cuda_version: str | None = None
    driver_version: str | None = None
    container: str | None = None
    captured_at: datetime


class Methodology(_Frozen):
    version: str = METHODOLOGY_VERSION
    window: str = (
        "energy sampler begin -> device sync -> timed inference over all prompts -> "
        "device sync -> sampler end; model load, tokenisation and warm-up are outside"
    )


class ExperimentResult(_Frozen):
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
    # The trace rows travel with the result in memory and are written to
    # timeseries.parquet, not into result.json.
    timeseries: tuple[dict[str, Any], ...] = Field(default=(), exclude=True, repr=False)
