"""The validity warnings of DESIGN §4 that apply to a window, each with its remedy."""

from __future__ import annotations

from collections.abc import Sequence

from llenergymeasure.energy.throttle import trace_warnings
from llenergymeasure.experiment.measurement import Window
from llenergymeasure.experiment.trace_view import TraceView
from llenergymeasure.records.energy import EnergyResult
from llenergymeasure.records.result import MeasurementWarning

__all__ = ["MAX_BASELINE_SHARE", "MIN_BASELINE_S", "MIN_WINDOW_S", "measurement_warnings"]

# Below 10 s, energy counters (~1 mJ resolution, ~10-100 ms update period) and the
# CPU-time clock (10 ms ticks) make up a visible share of the figure.
MIN_WINDOW_S = 10.0
# A shorter idle baseline does not average out the device's power-management noise.
MIN_BASELINE_S = 30.0
# Idle power above half the window's mean power: the adjusted figure is mostly subtraction.
MAX_BASELINE_SHARE = 0.5


def measurement_warnings(
    window: Window,
    energy: EnergyResult,
    view: TraceView,
    plan_warnings: Sequence[str] = (),
) -> list[MeasurementWarning]:
    """The validity warnings of DESIGN §4 that apply to this window, each with a remedy."""
    found = [
        MeasurementWarning(code="host_setup", message=text, remedy="see the message")
        for text in plan_warnings
    ]
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
    for w in trace_warnings(view.trace, view.t0, view.t1):
        found.append(MeasurementWarning(code=w.code, message=w.message, remedy=w.remedy))
    for text in window.energy.warnings:
        found.append(
            MeasurementWarning(code="energy_sampler", message=text, remedy="see the message")
        )
    return found
