"""Step 6: warm-up runs (a fixed count, or until latency converges), busy through the floor."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from llenergymeasure.config.models import WarmupConfig
from llenergymeasure.engines.base import LoadedModel, PreparedPrompts
from llenergymeasure.experiment.reporter import Reporter
from llenergymeasure.records.result import WarmupResult

__all__ = ["GPU_MIN_THERMAL_FLOOR_S", "coefficient_of_variation", "run_warmup"]

# Below ~30 s a GPU has not reached a steady temperature after warm-up load.
GPU_MIN_THERMAL_FLOOR_S = 30.0


def coefficient_of_variation(values: list[float]) -> float:
    """Sample standard deviation over mean (0 for a constant series)."""
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean > 0 else 0.0


def run_warmup(
    model: LoadedModel,
    batch: PreparedPrompts,
    config: WarmupConfig,
    *,
    on_gpu: bool,
    reporter: Reporter,
    clock: Callable[[], float] = time.perf_counter,
) -> WarmupResult:
    """Generate on the warm-up batch until warm; on a GPU, keep generating through the floor.

    The thermal floor is spent working, not waiting: an idle GPU cools, and the window
    would start on a colder, faster-clocked device than the workload settles on. The
    warm-up batch holds prompts that are not in the measured set, so no prefix cache
    built here can hit inside the window.
    """
    started = clock()
    if not config.enabled:
        return WarmupResult(
            n_runs=0,
            mode="disabled",
            converged=None,
            final_cv=None,
            duration_s=0.0,
            thermal_floor_s=0.0,
        )
    latencies: list[float] = []
    converged: bool | None = None
    final_cv: float | None = None
    limit = config.max if config.convergence else config.n_warmup
    reporter.start_progress(limit, "warm-up")
    while len(latencies) < limit:
        latencies.append(_one_run(model, batch, clock))
        reporter.advance(len(latencies))
        if config.convergence and len(latencies) >= max(config.min, config.window):
            final_cv = coefficient_of_variation(latencies[-config.window :])
            if final_cv < config.cv_threshold:
                converged = True
                break
    if config.convergence and converged is None:
        converged = False
    floor_s = max(config.thermal_floor_s, GPU_MIN_THERMAL_FLOOR_S) if on_gpu else 0.0
    n_floor_runs = _keep_busy(model, batch, started + floor_s, reporter, clock) if floor_s else 0
    return WarmupResult(
        n_runs=len(latencies) + n_floor_runs,
        mode="convergence" if config.convergence else "fixed",
        converged=converged,
        final_cv=final_cv,
        duration_s=clock() - started,
        thermal_floor_s=floor_s,
        n_floor_runs=n_floor_runs,
    )


def _one_run(model: LoadedModel, batch: PreparedPrompts, clock: Callable[[], float]) -> float:
    t0 = clock()
    model.generate(batch)
    model.synchronize()
    return clock() - t0


def _keep_busy(
    model: LoadedModel,
    batch: PreparedPrompts,
    until_s: float,
    reporter: Reporter,
    clock: Callable[[], float],
) -> int:
    """Warm-up runs until ``until_s`` on ``clock``; how many ran."""
    left_s = until_s - clock()
    if left_s <= 0:
        return 0
    reporter.info(f"thermal floor: keeping the GPU busy with warm-up runs for {left_s:.0f} s more")
    n_runs = 0
    while clock() < until_s:
        _one_run(model, batch, clock)
        n_runs += 1
    return n_runs
