"""Step 7: the measured window, and nothing else inside it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from llenergymeasure.energy.base import EnergyReading, EnergySampler
from llenergymeasure.energy.trace import PowerTrace
from llenergymeasure.engines.base import GenerationOutput, LoadedModel, PreparedPrompts
from llenergymeasure.experiment.reporter import Reporter

__all__ = ["Window", "measure_window"]


@dataclass(frozen=True)
class Window:
    """What happened inside the window."""

    started_at: datetime
    ended_at: datetime
    duration_s: float
    output: GenerationOutput
    energy: EnergyReading
    peak_device_mib: float | None


def measure_window(
    model: LoadedModel,
    prepared: PreparedPrompts,
    sampler: EnergySampler,
    reporter: Reporter,
    trace: PowerTrace,
) -> Window:
    """Sampler begin -> device sync -> inference over all prompts -> device sync -> sampler end.

    The trace (already running) gets a mark at each edge of the window.
    """
    model.reset_peak_memory()
    reporter.start_progress(prepared.n_prompts, "measuring")
    sampler.begin()
    model.synchronize()
    started_at = datetime.now(timezone.utc)
    trace.mark("window_start")
    t0 = time.perf_counter()
    output = model.generate(prepared, on_progress=reporter.advance)
    model.synchronize()
    duration_s = time.perf_counter() - t0
    trace.mark("window_end")
    ended_at = datetime.now(timezone.utc)
    energy = sampler.end()
    return Window(
        started_at=started_at,
        ended_at=ended_at,
        duration_s=duration_s,
        output=output,
        energy=energy,
        peak_device_mib=model.peak_device_memory_mib(),
    )
