"""Idle power, twice: with no CUDA context (before loading) and as the workload finds it.

The baseline that "adjusted" energy subtracts is taken inside the engine's process after
the model has loaded and before warm-up: a GPU idles higher once a process holds a CUDA
context and a model (an H200: 120 W against 79-86 W with none), so a baseline taken
before loading would overstate the adjusted energy by that difference × the window.

The no-context idle is kept as a second, labelled figure, never subtracted. It costs a
run nothing most of the time: it is cached (``cache_ttl_s``) and, when measured, it is
measured for ``spot_check_s`` only, not the baseline's ``duration_s``.

Both are cached under a key of what they depend on: the sampler, the host, the GPUs in
scope by UUID, the driver, and for the baseline the engine's state (engine, its settings,
the model). Two runs on different GPUs never share an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket

from llenergymeasure.config.paths import cache_root
from llenergymeasure.energy.baseline import BaselineCache, obtain_baseline, obtain_idle_figure
from llenergymeasure.experiment.gpu_checks import MeasuredScope
from llenergymeasure.experiment.preflight import Plan
from llenergymeasure.experiment.reporter import Reporter
from llenergymeasure.records.energy import BaselineResult

__all__ = [
    "LOADED_STATE",
    "NO_CONTEXT_STATE",
    "Idle",
    "baseline_key",
    "engine_state",
    "take_baseline",
    "take_idle_no_context",
]

LOADED_STATE = "engine loaded and idle (model resident, CUDA context held on a GPU), before warm-up"
NO_CONTEXT_STATE = "no CUDA context on the GPUs in scope (before the model loaded)"
# An idle figure, or None with the reason there is none.
Idle = tuple[BaselineResult | None, str | None]


def baseline_key(plan: MeasuredScope, state: str, engine: str | None = None) -> str:
    """Cache identity: sampler, host, scope (GPU UUIDs, driver), idle state, and ``engine``,
    what the loaded engine holds on the devices (for a baseline taken with it loaded)."""
    parts = [plan.sampler.name, socket.gethostname(), *plan.devices, state]
    parts += [gpu.uuid for gpu in plan.scope_gpus] + [plan.driver_version or "?"]
    if engine is not None:
        parts.append(engine)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def take_idle_no_context(plan: MeasuredScope, reporter: Reporter) -> Idle:
    """The GPUs' idle power with no CUDA context, or None with the reason there is none."""
    config = plan.config.measurement.baseline
    reason = _not_applicable(plan)
    if reason is not None:
        return None, reason
    if not plan.scope_gpus:
        return None, "not applicable: no GPU is measured"
    mine = os.getpid()
    if any(p.pid == mine for gpu in plan.scope_gpus for p in gpu.processes or ()):
        return None, "not measured: this process already held a CUDA context before loading"
    figure = obtain_idle_figure(
        plan.sampler,
        key=baseline_key(plan, NO_CONTEXT_STATE),
        cache=_cache(),
        duration_s=config.spot_check_s,
        ttl_s=config.cache_ttl_s,
        state=NO_CONTEXT_STATE,
        domains=lambda domain: domain.startswith("gpu:"),
        sleep=lambda seconds: reporter.wait(seconds, "idle power with no CUDA context"),
    )
    return figure, None


def take_baseline(
    plan: MeasuredScope,
    reporter: Reporter,
    *,
    engine: str,
    state: str = LOADED_STATE,
) -> Idle:
    """The baseline with the engine loaded, or None with the reason there is none.

    ``engine`` is what the loaded engine holds (:func:`engine_state` for an offline run);
    the cache keys on it, on ``state`` and on the scope.
    """
    reason = _not_applicable(plan)
    if reason is not None:
        return None, reason
    baseline = obtain_baseline(
        plan.sampler,
        plan.config.measurement.baseline,
        key=baseline_key(plan, state, engine),
        cache=_cache(),
        sources=plan.sources,
        interval_ms=plan.config.measurement.sample_interval_ms,
        sleep=lambda seconds: reporter.wait(seconds, "baseline: idle power, engine loaded"),
        state=state,
    )
    return baseline, None


def _not_applicable(plan: MeasuredScope) -> str | None:
    if not plan.config.measurement.baseline.enabled:
        return "disabled (measurement.baseline.enabled: false)"
    if not plan.sampler.needs_baseline:
        return (
            f"not applicable: the `{plan.sampler.name}` sampler attributes energy to this "
            "run's processes only, so idle power is not in its figure"
        )
    return None


def engine_state(plan: Plan) -> str:
    """What the loaded engine holds on the devices: engine, its settings, the model."""
    config = plan.config
    section = getattr(config, config.engine, None)
    settings = section.model_dump(mode="json") if section is not None else None
    return json.dumps(
        [config.engine, settings, str(plan.model.path), plan.engine_devices], sort_keys=True
    )


def _cache() -> BaselineCache:
    return BaselineCache(cache_root() / "baselines")
