"""Energy, power and thermal records: what the energy samplers and the trace measured.

Every energy figure carries its domain (``gpu:0``, ``cpu:0``, ``dram:0``), its method and
its source. A reading that was not taken is ``None``, never ``0``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from llenergymeasure.records.base import FrozenRecord

__all__ = [
    "BaselineResult",
    "Confidence",
    "DevicePower",
    "DeviceThermal",
    "DomainEnergy",
    "EnergyMethod",
    "EnergyResult",
    "EstimatedEnergy",
    "PowerResult",
    "TraceSummary",
]

EnergyMethod = Literal["counter", "integrated", "estimated"]
Confidence = Literal["high", "medium", "low"]


class DomainEnergy(FrozenRecord):
    """Energy of one domain (``gpu:0``, ``cpu:0``, ``dram:0``) over the window."""

    domain: str
    energy_j: float | None
    method: EnergyMethod
    source: str = Field(description="the energy sampler that produced the figure, e.g. `estimate`")
    device_uuid: str | None = Field(
        None, description="the GPU's UUID: `gpu:N` is NVML's index N, whatever CUDA calls it"
    )
    integrated_j: float | None = Field(
        None, description="the cross-check: sampled power integrated over the window"
    )
    gap_pct: float | None = Field(
        None, description="(integrated - counter) / counter x 100, when both exist"
    )
    power_source: Literal["instant", "averaged"] | None = Field(
        None,
        description="what the integration read: `instant` power, or `averaged` "
        "(nvmlDeviceGetPowerUsage, a 1 s moving average on Ampere and newer)",
    )


class BaselineResult(FrozenRecord):
    """Idle power of the measured devices over an idle interval, and how it was obtained.

    The energy code measures and caches it with ``age_s`` 0; the result gives its age
    when the run used it.
    """

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
    state: str | None = Field(
        None,
        description="what the devices held while idle: the loaded engine (the baseline), "
        "or no CUDA context (the second, no-context figure)",
    )


class EstimatedEnergy(FrozenRecord):
    """Domains whose figure is a model, not a reading: reported beside the headline, never in it."""

    domains: tuple[str, ...]
    total_j: float | None
    j_per_output_token: float | None
    j_per_request: float | None
    co2_g: float | None = None
    method: Literal["estimated"] = "estimated"
    confidence: Literal["low"] = "low"
    note: str = Field(description="why these figures are estimates and what they are not added to")


class EnergyResult(FrozenRecord):
    """Energy over the measured window, with how it was obtained.

    The headline (``total_j``, ``adjusted_j``, per token, per request, CO2) sums the
    measured domains only; estimated domains are in ``estimated``, with their own total.
    """

    sampler: str = Field(description="energy sampler used, or `none`")
    sampler_reason: str = Field(description="why this sampler was chosen")
    method: EnergyMethod | None = Field(
        description="the weakest method among the measured domains; None when none was measured"
    )
    confidence: Confidence | None
    domains: tuple[DomainEnergy, ...] = ()
    total_j: float | None = Field(description="the measured domains' energy; None if none")
    adjusted_j: float | None = Field(
        description="total minus baseline power x window; None without a baseline"
    )
    estimated: EstimatedEnergy | None = Field(
        None, description="the estimated domains, beside the headline and never in it"
    )
    baseline: BaselineResult | None = None
    baseline_note: str | None = Field(None, description="why there is no baseline, if none")
    idle_no_context: BaselineResult | None = Field(
        None,
        description="idle power with no CUDA context on the GPUs (before the model loaded): "
        "a second figure, never subtracted",
    )
    idle_no_context_note: str | None = Field(
        None, description="why there is no no-context figure, if none"
    )
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


class DevicePower(FrozenRecord):
    """Power statistics of one device over the window, from the trace."""

    device: str
    mean_w: float
    p50_w: float
    p99_w: float
    peak_w: float
    n_samples: int


class PowerResult(FrozenRecord):
    mean_w: float | None
    peak_w: float | None
    method: str
    devices: tuple[DevicePower, ...] = ()


class DeviceThermal(FrozenRecord):
    """Temperature, clocks, throttling and power capping of one device over the window."""

    device: str
    throttled_s: float | None = Field(
        description="seconds with thermal slowdown, HW slowdown or HW power brake active"
    )
    first_throttle_s: float | None
    last_throttle_s: float | None
    reasons: tuple[str, ...]
    max_temperature_c: float | None
    min_sm_clock_mhz: float | None
    mean_sm_clock_mhz: float | None
    temperature_drift_c: float | None
    power_capped_s: float | None = Field(
        None, description="seconds at the power limit (SW power cap): not throttling"
    )
    seconds_by_reason: dict[str, float] = Field(
        default_factory=dict, description="seconds each clock-event reason was active"
    )
    reason_sources: dict[str, str] = Field(
        default_factory=dict,
        description="per reason: `counter` (NVML's duration counter) or `sampled` (reason "
        "bits); `sampled (...)` when the counter failed the cross-check against the bits",
    )


class TraceSummary(FrozenRecord):
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
    power_sources: dict[str, str] = Field(
        default_factory=dict,
        description="per GPU, what its power_w column reads: `instant` or `averaged` (1 s)",
    )
