"""Step 6: warm-up runs (a fixed count, or until latency converges), then the thermal floor."""

from __future__ import annotations

import statistics
import time

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
) -> WarmupResult:
    """Generate on one batch until warm; wait the thermal floor when a GPU is measured."""
    started = time.perf_counter()
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
        t0 = time.perf_counter()
        model.generate(batch)
        model.synchronize()
        latencies.append(time.perf_counter() - t0)
        reporter.advance(len(latencies))
        if config.convergence and len(latencies) >= max(config.min, config.window):
            final_cv = coefficient_of_variation(latencies[-config.window :])
            if final_cv < config.cv_threshold:
                converged = True
                break
    if config.convergence and converged is None:
        converged = False
    floor_s = max(config.thermal_floor_s, GPU_MIN_THERMAL_FLOOR_S) if on_gpu else 0.0
    if floor_s > 0:
        reporter.wait(floor_s, "thermal floor")
    return WarmupResult(
        n_runs=len(latencies),
        mode="convergence" if config.convergence else "fixed",
        converged=converged,
        final_cv=final_cv,
        duration_s=time.perf_counter() - started,
        thermal_floor_s=floor_s,
    )
