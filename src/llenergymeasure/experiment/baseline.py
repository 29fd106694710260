"""Step 3: idle power before the model loads, when the energy sampler reads whole devices."""

from __future__ import annotations

import hashlib
import socket

from llenergymeasure.config.paths import cache_root
from llenergymeasure.energy.baseline import Baseline, BaselineCache, obtain_baseline
from llenergymeasure.experiment.preflight import Plan
from llenergymeasure.experiment.reporter import Reporter
from llenergymeasure.system.gpus import list_gpus

__all__ = ["baseline_key", "take_baseline"]


def baseline_key(plan: Plan) -> str:
    """Cache identity: sampler, host, devices, and for GPUs their UUIDs and the driver."""
    parts = [plan.sampler.name, socket.gethostname(), *plan.devices]
    if plan.on_gpu:
        gpus, driver, _ = list_gpus()
        parts += [g.uuid for g in gpus] + [driver or "?"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def take_baseline(plan: Plan, reporter: Reporter) -> tuple[Baseline | None, str | None]:
    """The baseline, or None with the reason there is none."""
    config = plan.config.measurement.baseline
    if not config.enabled:
        return None, "disabled (measurement.baseline.enabled: false)"
    if not plan.sampler.needs_baseline:
        return None, (
            f"not applicable: the `{plan.sampler.name}` sampler attributes energy to this "
            "run's processes only, so idle power is not in its figure"
        )
    baseline = obtain_baseline(
        plan.sampler,
        config,
        key=baseline_key(plan),
        cache=BaselineCache(cache_root() / "baselines"),
        sources=plan.sources,
        interval_ms=plan.config.measurement.sample_interval_ms,
        sleep=lambda seconds: reporter.wait(seconds, "baseline: measuring idle power"),
    )
    return baseline, None
