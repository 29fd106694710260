"""The energy figures of a window: gross, static and adjusted energy, per token and per
request, and CO2; None wherever a reading is missing."""

from __future__ import annotations

from datetime import datetime, timezone

from llenergymeasure.config.loading import carbon_intensity
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy.baseline import Baseline
from llenergymeasure.experiment.measurement import Window
from llenergymeasure.records.energy import BaselineResult, EnergyResult

__all__ = ["energy_result"]

_J_PER_KWH = 3.6e6


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
