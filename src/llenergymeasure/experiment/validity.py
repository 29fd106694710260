"""The validity warnings of DESIGN §4 that apply to a window, each with its remedy."""

from __future__ import annotations

from collections.abc import Sequence

from llenergymeasure.config.models import GPU_MIN_WINDOW_S, ExperimentConfig
from llenergymeasure.energy.base import SamplerWarning
from llenergymeasure.experiment.measurement import Window
from llenergymeasure.experiment.trace_view import TraceView
from llenergymeasure.records.energy import EnergyResult
from llenergymeasure.records.result import MeasurementWarning

__all__ = [
    "MAX_BASELINE_SHARE",
    "MAX_GAP_PCT",
    "MIN_BASELINE_S",
    "MIN_WINDOW_S",
    "measurement_warnings",
]

# Below 10 s, energy counters (~1 mJ resolution, ~100 ms update period on an H200) and the
# CPU-time clock (10 ms ticks) make up a visible share of the figure.
MIN_WINDOW_S = GPU_MIN_WINDOW_S
# A shorter idle baseline does not average out the device's power-management noise.
MIN_BASELINE_S = 30.0
# Idle power above half the window's mean power: the adjusted figure is mostly subtraction.
MAX_BASELINE_SHARE = 0.5
# Counter and integrated instant power agree within this on a window of MIN_WINDOW_S or more
# (0.6 % over 11 s on an H200); a larger gap means one of them is wrong.
MAX_GAP_PCT = 2.0


def measurement_warnings(
    window: Window,
    energy: EnergyResult,
    view: TraceView,
    plan_warnings: Sequence[MeasurementWarning] = (),
    *,
    config: ExperimentConfig | None = None,
) -> list[MeasurementWarning]:
    """The validity warnings of DESIGN §4 that apply to this window, each with a remedy."""
    found = list(plan_warnings)
    found += _energy_warnings(energy)
    found += _window_warnings(window, config)
    found += _baseline_warnings(window, energy)
    found += _cross_check_warnings(window, energy)
    for w in [*view.warnings(), *window.energy.warnings]:
        if isinstance(w, str):
            w = SamplerWarning("energy_sampler", w)
        found.append(MeasurementWarning(code=w.code, message=w.message, remedy=w.remedy))
    return found


def _energy_warnings(energy: EnergyResult) -> list[MeasurementWarning]:
    found = []
    estimated = energy.estimated
    if estimated is not None and estimated.total_j is not None:
        where = ", ".join(estimated.domains)
        how = _estimate_model(energy)
        if energy.total_j is not None:
            message = (
                f"{where} has no energy counter here: its figure is an estimate ({how}; low "
                f"confidence), reported beside the measured {energy.method} total and not "
                "added to it"
            )
        else:
            message = (
                "no energy counter is readable on this host: the only energy figure is an "
                f"estimate of {where} ({how}; low confidence), in energy.estimated; the "
                "measured total is null"
            )
        found.append(
            MeasurementWarning(
                code="estimated_energy",
                message=message,
                remedy="run on a host with RAPL or an NVIDIA GPU, "
                "or set cpu_tdp_w in the user config",
            )
        )
    if energy.total_j is None and (estimated is None or estimated.total_j is None):
        disabled = energy.sampler == "none"
        found.append(
            MeasurementWarning(
                code="no_energy",
                message="no energy figure for this run"
                + (" (energy measurement disabled)" if disabled else " (no reading in the window)"),
                remedy=(
                    "set measurement.energy_sampler to auto"
                    if disabled
                    else "lengthen the window: more prompts, output tokens or min_window_s"
                ),
            )
        )
    return found


def _window_warnings(window: Window, config: ExperimentConfig | None) -> list[MeasurementWarning]:
    """A window shorter than ``min_window_s`` when set, else than 10 s (counter resolution)."""
    configured = config.measurement.min_window_s if config is not None else None
    threshold_s = configured if configured is not None else MIN_WINDOW_S
    if window.duration_s >= threshold_s:
        return []
    passes = f" after {window.n_passes} passes" if window.n_passes > 1 else ""
    return [
        MeasurementWarning(
            code="short_window",
            message=(
                f"measured window is {window.duration_s:.1f} s{passes}, under {threshold_s:g} s: "
                "sensor resolution is a visible share of the energy figure"
            ),
            remedy="set measurement.min_window_s (the window repeats the prompts until it "
            "lasts that long), or use more prompts or output tokens",
        )
    ]


def _baseline_warnings(window: Window, energy: EnergyResult) -> list[MeasurementWarning]:
    found = []
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
    return found


def _cross_check_warnings(window: Window, energy: EnergyResult) -> list[MeasurementWarning]:
    """The counter against integrated power, and GPUs whose power is only a 1 s average."""
    found = []
    gaps = [
        f"{d.domain} {d.gap_pct:+.2f} %"
        for d in energy.domains
        if d.gap_pct is not None and d.power_source == "instant" and abs(d.gap_pct) > MAX_GAP_PCT
    ]
    if gaps and window.duration_s >= MIN_WINDOW_S:
        found.append(
            MeasurementWarning(
                code="counter_gap",
                message=(
                    f"the energy counter and integrated instant power differ by more than "
                    f"{MAX_GAP_PCT:g} % over a {window.duration_s:.1f} s window: " + ", ".join(gaps)
                ),
                remedy="check for other load on the GPU and a sampler that kept up "
                "(trace.achieved_rate); report the counter figure",
            )
        )
    averaged = [d.domain for d in energy.domains if d.power_source == "averaged"]
    if averaged:
        found.append(
            MeasurementWarning(
                code="averaged_power",
                message=(
                    f"{', '.join(averaged)}: NVML gives no instant power field here, so power "
                    "samples are nvmlDeviceGetPowerUsage, a 1 s moving average that lags load "
                    "changes by about a second; the counter figure is unaffected"
                ),
                remedy="use a driver and pynvml with NVML_FI_DEV_POWER_INSTANT (field values)",
            )
        )
    return found


def _estimate_model(energy: EnergyResult) -> str:
    """How the estimate was made: the CPU-time model with its TDP, or the sampler's models."""
    sources = sorted({d.source for d in energy.domains if d.method == "estimated"})
    if sources != ["estimate"]:
        return f"{', '.join(sources)}'s own models"
    details = energy.details
    nested = details.get("estimate")
    tdp = details.get("tdp_source")
    if tdp is None and isinstance(nested, dict):
        tdp = nested.get("tdp_source")
    return f"process CPU time x TDP per thread, TDP from {tdp or 'unknown'}"
