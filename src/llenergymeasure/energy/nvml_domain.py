"""One GPU over one window: what the NVML sampler read from it, and the figure that follows.

The figure is the total-energy counter's advance (``method: counter``). A counter that
did not advance (stalled or reset) is no figure, never 0 J: power integrated over the
window takes its place when there are enough samples, labelled ``integrated``. A GPU
without a counter is integrated from the start. The integral of instant power is kept
beside the counter as a cross-check, with its gap.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from llenergymeasure.energy.base import SamplerWarning
from llenergymeasure.energy.nvml_readings import POWER_SOURCE_TEXT, GpuReader
from llenergymeasure.energy.throttle import counter_out_of_window
from llenergymeasure.records.energy import DomainEnergy

__all__ = ["MIN_INTEGRATION_SAMPLES", "GpuWindow", "domain_result"]

# Fewer power samples than this do not stand in for a counter that failed.
MIN_INTEGRATION_SAMPLES = 10
_KEPT_ERRORS = 5


@dataclass
class GpuWindow:
    """What the current window has read from one GPU."""

    reader: GpuReader
    counter_start_mj: int | None = None
    reasons_start_s: dict[str, float] = field(default_factory=dict)
    samples: list[tuple[float, float]] = field(default_factory=list)  # (clock s, W)
    first_poll_ok: bool = False
    last_poll_ok: bool = False
    errors: list[str] = field(default_factory=list)  # the first few, for the details
    n_errors: int = 0

    def note_error(self, error: str) -> None:
        self.n_errors += 1
        if len(self.errors) < _KEPT_ERRORS:
            self.errors.append(error)

    @property
    def label(self) -> str:
        return self.reader.gpu.label


def domain_result(
    window: GpuWindow,
    counter_end_mj: int | None,
    reasons_end_s: dict[str, float],
    duration_s: float,
    source: str,
) -> tuple[DomainEnergy, dict[str, Any], list[SamplerWarning]]:
    """The domain's figure, its details, and the warnings it calls for."""
    gpu = window.reader.gpu
    warnings: list[SamplerWarning] = []
    counter_j = None
    if window.counter_start_mj is not None and counter_end_mj is not None:
        counter_j = (counter_end_mj - window.counter_start_mj) / 1000
    integrated_j = _trapezoid_j(window.samples)
    stalled = counter_j is not None and counter_j <= 0
    if stalled:
        warnings.append(_stalled(window, counter_j or 0.0, duration_s))
    partial = counter_j is None and not (window.first_poll_ok and window.last_poll_ok)
    energy_j, method = _figure(window, None if stalled else counter_j, integrated_j, stalled)
    if method == "integrated" and not stalled:
        warning = _integration_warning(window, energy_j, partial, duration_s)
        if warning is not None:
            warnings.append(warning)
    reasons_s, reason_warning = _reason_seconds(window, reasons_end_s, duration_s)
    if reason_warning is not None:
        warnings.append(reason_warning)
    good_counter = None if stalled else counter_j
    gap_pct = None
    if good_counter is not None and integrated_j is not None:
        gap_pct = 100 * (integrated_j - good_counter) / good_counter
    power_source = window.reader.power_source
    details: dict[str, Any] = {
        "uuid": gpu.uuid,
        "name": gpu.name,
        "cuda_device": gpu.cuda_device,
        "method": method,
        "counter_j": counter_j,
        "integrated_j": integrated_j,
        "power_source": power_source,
        "gap_pct": gap_pct,
        "n_power_samples": len(window.samples),
        "partial": partial,
        "clock_event_s": reasons_s,
        "errors": list(window.errors),
        "n_errors": window.n_errors,
    }
    domain = DomainEnergy(
        domain=gpu.domain,
        energy_j=energy_j,
        method=method,
        source=source,
        device_uuid=gpu.uuid,
        integrated_j=integrated_j,
        gap_pct=gap_pct,
        power_source=power_source,
    )
    return domain, details, warnings


def _figure(
    window: GpuWindow, counter_j: float | None, integrated_j: float | None, stalled: bool
) -> tuple[float | None, Literal["counter", "integrated"]]:
    if counter_j is not None:
        return counter_j, "counter"
    if stalled and len(window.samples) < MIN_INTEGRATION_SAMPLES:
        return None, "integrated"
    return integrated_j, "integrated"


def _stalled(window: GpuWindow, counter_j: float, duration_s: float) -> SamplerWarning:
    n = len(window.samples)
    instead = (
        f"power integrated from {n} samples of {POWER_SOURCE_TEXT[window.reader.power_source]} "
        "stands in for it"
        if n >= MIN_INTEGRATION_SAMPLES
        else f"only {n} power samples, too few to integrate: no figure"
    )
    return SamplerWarning(
        "counter_stalled",
        f"{window.label}: the energy counter moved {counter_j:+.3f} J over the "
        f"{duration_s:.2f} s window (stalled or reset), so it is no reading; {instead}",
        "lengthen the window (measurement.min_window_s); if it recurs, check the driver",
    )


def _integration_warning(
    window: GpuWindow, energy_j: float | None, partial: bool, duration_s: float
) -> SamplerWarning | None:
    first_error = window.errors[0] if window.errors else "no error reported"
    if not window.samples and window.counter_start_mj is None:
        message = (
            f"{window.label}: NVML gave neither an energy counter nor power readings "
            f"({first_error}); no energy figure"
        )
    elif partial:
        covered_s = window.samples[-1][0] - window.samples[0][0] if window.samples else 0.0
        what = (
            f"power integrated over the {covered_s:.1f} s it answered"
            if energy_j is not None
            else "no figure"
        )
        message = (
            f"{window.label}: NVML error mid-window ({first_error}); its energy is partial "
            f"({what} of the {duration_s:.1f} s window)"
        )
    elif window.counter_start_mj is not None:
        message = (
            f"{window.label}: the energy counter could not be read ({first_error}); "
            "using integrated power instead"
        )
    else:
        return None
    return SamplerWarning("energy_sampler", message)


def _reason_seconds(
    window: GpuWindow, reasons_end_s: dict[str, float], duration_s: float
) -> tuple[dict[str, float] | None, SamplerWarning | None]:
    """Seconds per clock-event reason over the window, from NVML's duration counters.

    Implausible deltas are kept (with a warning) for the thermal summary, which checks
    every counter against the sampled bits and says in its source field why it fell back.
    """
    common = set(window.reasons_start_s) & set(reasons_end_s)
    if not common:
        return None, None
    deltas = {r: reasons_end_s[r] - window.reasons_start_s[r] for r in sorted(common)}
    implausible = {r: s for r, s in deltas.items() if counter_out_of_window(s, duration_s)}
    if implausible:
        shown = ", ".join(f"{r} {s:+.3f} s" for r, s in implausible.items())
        return deltas, SamplerWarning(
            "reason_counters",
            f"{window.label}: NVML's clock-event duration counters moved by more than the "
            f"{duration_s:.2f} s window or backwards ({shown}); the thermal summary checks "
            "each against the sampled reason bits, and thermal reason_sources says which it used",
            "see the message",
        )
    return deltas, None


def _trapezoid_j(samples: Sequence[tuple[float, float]]) -> float | None:
    if len(samples) < 2:
        return None
    ordered = sorted(samples)
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(ordered))
