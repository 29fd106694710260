"""The energy figures of a window: gross, static and adjusted energy, per token and per
request, and CO2; None wherever a reading is missing.

The headline sums the measured domains only (``counter``, ``integrated``). Estimated
domains (the CPU estimate, CodeCarbon's models) are reported beside it with their own
total and per-token figures, and never added to it: a GPU run whose CPU has no counter
keeps its GPU counter figure, labelled ``counter``, and shows the CPU estimate apart.
"""

from __future__ import annotations

from datetime import datetime, timezone

from llenergymeasure.config.loading import carbon_intensity
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy.baseline import baseline_age_s
from llenergymeasure.experiment.baseline import Idle
from llenergymeasure.experiment.measurement import Window
from llenergymeasure.records.energy import BaselineResult, EnergyResult, EstimatedEnergy

__all__ = ["ESTIMATED_NOTE", "energy_result"]

_J_PER_KWH = 3.6e6
ESTIMATED_NOTE = (
    "a model of the energy, not a reading (low confidence): reported beside the measured "
    "total and never added to it"
)


def energy_result(
    window: Window,
    sampler_reason: str,
    *,
    n_output_tokens: int,
    n_requests: int,
    config: ExperimentConfig,
    baseline: Idle = (None, None),
    idle_no_context: Idle = (None, None),
    now: datetime | None = None,
) -> EnergyResult:
    """Gross, static and adjusted energy, per token and per request, CO2; None where unknown.

    ``baseline`` and ``idle_no_context`` are each an idle figure or None with the reason.
    """
    reading = window.energy
    total = reading.measured_j
    static = adjusted = None
    figure, note = baseline
    if figure is not None and total is not None:
        measured = {
            d.domain for d in reading.domains if d.energy_j is not None and d.method != "estimated"
        }
        idle_w = sum(w for domain, w in figure.power_w_by_domain.items() if domain in measured)
        static = idle_w * window.duration_s
        adjusted = max(0.0, total - static)
    factor = _co2_factor(config)
    at = now or datetime.now(timezone.utc)
    return EnergyResult(
        sampler=reading.sampler,
        sampler_reason=sampler_reason,
        method=reading.method,
        confidence=reading.confidence if total is not None else None,
        domains=reading.domains,
        total_j=total,
        adjusted_j=adjusted,
        estimated=_estimated(window, n_output_tokens, n_requests, factor),
        baseline=_baseline_result(figure, at),
        baseline_note=note,
        idle_no_context=_baseline_result(idle_no_context[0], at),
        idle_no_context_note=idle_no_context[1],
        static_j=static,
        j_per_output_token=_per(total, n_output_tokens),
        j_per_request=_per(total, n_requests),
        co2_g=total * factor if total is not None and factor is not None else None,
        co2_adjusted_g=adjusted * factor if adjusted is not None and factor is not None else None,
        carbon_intensity_g_per_kwh=carbon_intensity(config),
        details=dict(reading.details),
    )


def _estimated(
    window: Window, n_output_tokens: int, n_requests: int, factor: float | None
) -> EstimatedEnergy | None:
    domains = [d for d in window.energy.domains if d.method == "estimated"]
    if not domains:
        return None
    total = window.energy.estimated_j
    return EstimatedEnergy(
        domains=tuple(d.domain for d in domains),
        total_j=total,
        j_per_output_token=_per(total, n_output_tokens),
        j_per_request=_per(total, n_requests),
        co2_g=total * factor if total is not None and factor is not None else None,
        note=ESTIMATED_NOTE,
    )


def _per(total: float | None, count: int) -> float | None:
    return total / count if total is not None and count else None


def _co2_factor(config: ExperimentConfig) -> float | None:
    intensity = carbon_intensity(config)
    return intensity * config.measurement.pue / _J_PER_KWH if intensity is not None else None


def _baseline_result(baseline: BaselineResult | None, now: datetime) -> BaselineResult | None:
    """The idle figure with its age at ``now``, when the result is assembled."""
    if baseline is None:
        return None
    return baseline.model_copy(update={"age_s": baseline_age_s(baseline, now)})
