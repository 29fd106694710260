"""Step 7: the measured window, and nothing else inside it.

The window runs the prompt set once, and again, in the same order, until it has lasted
``min_window_s``: an energy counter that steps every ~100 ms (an H200's) needs about 10 s
for its resolution to stay under 1 % of the figure. Every pass counts: tokens, requests
and latencies are those of all passes, so per-token and per-request figures hold.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from llenergymeasure.energy.base import EnergyReading, EnergySampler
from llenergymeasure.energy.trace import PowerTrace
from llenergymeasure.engines.base import (
    GenerationOutput,
    LoadedModel,
    PreparedPrompts,
    ProgressCallback,
)
from llenergymeasure.experiment.reporter import Reporter, WindowSoFar

__all__ = ["MAX_PASSES", "Window", "measure_window"]

# A bound, so that a workload that takes no time cannot loop for ever; a window that stops
# here short of its minimum says so (the short-window warning).
MAX_PASSES = 1000


@dataclass(frozen=True)
class Window:
    """What happened inside the window. ``output`` holds every pass's requests, indexed
    ``pass x n_prompts + prompt``."""

    started_at: datetime
    ended_at: datetime
    duration_s: float
    output: GenerationOutput
    energy: EnergyReading
    peak_device_mib: float | None
    n_passes: int = 1
    min_window_s: float = 0.0


def measure_window(
    model: LoadedModel,
    prepared: PreparedPrompts,
    sampler: EnergySampler,
    reporter: Reporter,
    trace: PowerTrace,
    *,
    min_window_s: float = 0.0,
    clock: Callable[[], float] = time.perf_counter,
) -> Window:
    """Sampler begin -> device sync -> passes over all prompts until ``min_window_s`` ->
    device sync -> sampler end. The trace (already running) gets a mark at each edge.
    """
    model.reset_peak_memory()
    reporter.start_progress(prepared.n_prompts, "measuring")
    sampler.begin()
    model.synchronize()
    started_at = datetime.now(timezone.utc)
    trace.mark("window_start")
    t0 = clock()
    passes: list[GenerationOutput] = []
    while True:
        if passes:
            reporter.start_progress(prepared.n_prompts, f"measuring (pass {len(passes) + 1})")
        on_batch = _progress(reporter, trace, n_tokens_before=_n_output_tokens(passes))
        passes.append(model.generate(prepared, on_progress=on_batch))
        model.synchronize()
        if clock() - t0 >= min_window_s or len(passes) >= MAX_PASSES:
            break
    duration_s = clock() - t0
    trace.mark("window_end")
    ended_at = datetime.now(timezone.utc)
    energy = sampler.end()
    return Window(
        started_at=started_at,
        ended_at=ended_at,
        duration_s=duration_s,
        output=_joined(passes, prepared.n_prompts),
        energy=energy,
        peak_device_mib=model.peak_device_memory_mib(),
        n_passes=len(passes),
        min_window_s=min_window_s,
    )


def _n_output_tokens(passes: list[GenerationOutput]) -> int:
    return sum(r.n_output_tokens for output in passes for r in output.requests)


def _progress(reporter: Reporter, trace: PowerTrace, *, n_tokens_before: int) -> ProgressCallback:
    """The engine's per-batch callback: requests done, with the window's output tokens and
    the traced devices' energy so far (a few lookups; no extra call into the engine)."""

    def on_batch(done: int, n_output_tokens: int | None = None) -> None:
        tokens = None if n_output_tokens is None else n_tokens_before + n_output_tokens
        energy = trace.energy_since("window_start")
        reporter.advance(done, WindowSoFar(tokens, energy))

    return on_batch


def _joined(passes: list[GenerationOutput], n_prompts: int) -> GenerationOutput:
    """One output for every pass: request ``i`` of pass ``p`` becomes ``p x n_prompts + i``,
    in its request and in the batch timing that names it."""
    if len(passes) == 1:
        return passes[0]
    requests = tuple(
        dataclasses.replace(request, index=number * n_prompts + request.index)
        for number, output in enumerate(passes)
        for request in output.requests
    )
    # Batch times are already on one clock (perf_counter) across passes; only the request
    # numbers a batch names change, as its requests' do.
    batches = tuple(
        dataclasses.replace(batch, indices=tuple(number * n_prompts + i for i in batch.indices))
        for number, output in enumerate(passes)
        for batch in output.batches
    )
    return GenerationOutput(
        requests=requests, timing_definition=passes[0].timing_definition, batches=batches
    )
