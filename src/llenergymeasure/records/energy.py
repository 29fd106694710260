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


class BaselineResult(FrozenRecord):
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


class EnergyResult(FrozenRecord):
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
