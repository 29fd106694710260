"""The experiment spine: one experiment, step by step (DESIGN §4)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llenergymeasure._version import tool_version
from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.config.loading import UserConfig, load_user_config, validate_experiment
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.engines.base import Engine
from llenergymeasure.experiment.loading import load_model, prepare_prompts
from llenergymeasure.experiment.measurement import measure_window
from llenergymeasure.experiment.metrics import compute_metrics, measurement_warnings
from llenergymeasure.experiment.preflight import run_preflight
from llenergymeasure.experiment.reporter import NullReporter, Reporter
from llenergymeasure.experiment.warmup import run_warmup
from llenergymeasure.results.models import (
    ExperimentResult,
    ModelIdentity,
    TimingResult,
    WindowResult,
)
from llenergymeasure.results.persistence import create_unique_dir, run_dir_name, write_experiment
from llenergymeasure.system.environment import EnvironmentCapture

__all__ = ["run_experiment", "write_single_run"]


def run_experiment(
    config: ExperimentConfig | Mapping[str, Any],
    *,
    output_dir: Path | str | None = None,
    engine: Engine | None = None,
    sampler: EnergySampler | None = None,
    reporter: Reporter | None = None,
    user_config: UserConfig | None = None,
) -> ExperimentResult:
    """Run one experiment and return its result; with ``output_dir`` also write its files.

    ``engine`` and ``sampler`` replace the ones the config names (tests pass fakes).
    """
    if not isinstance(config, ExperimentConfig):
        config = validate_experiment(config)
    reporter = reporter or NullReporter()
    user = user_config if user_config is not None else load_user_config()
    t_start = time.perf_counter()
    environment = EnvironmentCapture().start()  # 2. environment snapshot, in the background
    with reporter.step("pre-flight"):  # 1. every problem at once
        plan = run_preflight(config, user=user, engine=engine, sampler=sampler)
    t_preflight = time.perf_counter()
    with reporter.step("loading model"):  # 4. load (3. baseline: see the energy samplers)
        model = load_model(plan)
    t_load = time.perf_counter()
    try:
        with reporter.step("preparing prompts"):  # 5. prompts tokenised outside the window
            prompts = prepare_prompts(plan, model)
        t_prepare = time.perf_counter()
        with reporter.step("warm-up"):  # 6. warm-up, thermal floor
            warmup = run_warmup(
                model,
                prompts.warmup,
                config.measurement.warmup,
                on_gpu=plan.on_gpu,
                reporter=reporter,
            )
        t_warmup = time.perf_counter()
        with reporter.step("measuring"):  # 7. the window
            window = measure_window(model, prompts.prepared, plan.sampler, reporter)
    finally:
        model.close()
    # 8. metrics and the result object
    metrics = compute_metrics(window, model.info, config, plan.sampler_reason, prompts.ids)
    result = ExperimentResult(
        experiment_id=f"{window.started_at:%Y%m%dT%H%M%SZ}-{measurement_config_hash(config)[:8]}",
        measurement_config_hash=measurement_config_hash(config),
        tool_version=tool_version(),
        engine=config.engine,
        engine_version=model.info.engine_version,
        engine_args=model.info.engine_args,
        model=ModelIdentity(
            name=config.task.model,
            resolved=str(plan.model.path),
            kind=plan.model.kind,
            resolved_label=plan.model.label,
            n_params=model.info.n_params,
            n_non_embedding_params=model.info.n_non_embedding_params,
            dtype=model.info.dtype,
            device=model.info.device,
        ),
        config=config,
        window=WindowResult(
            started_at=window.started_at, ended_at=window.ended_at, duration_s=window.duration_s
        ),
        tokens=metrics.tokens,
        throughput=metrics.throughput,
        latency=metrics.latency,
        energy=metrics.energy,
        power=metrics.power,
        warmup=warmup,
        flops=metrics.flops,
        memory=metrics.memory,
        timings=TimingResult(
            preflight_s=t_preflight - t_start,
            load_s=t_load - t_preflight,
            prepare_s=t_prepare - t_load,
            warmup_s=t_warmup - t_prepare,
            window_s=window.duration_s,
            total_s=time.perf_counter() - t_start,
        ),
        environment=environment.result(),
        warnings=tuple(measurement_warnings(window, metrics.energy)),
        requests=metrics.requests,
    )
    if output_dir is not None:
        write_single_run(result, Path(output_dir))
    return result


def write_single_run(result: ExperimentResult, root: Path) -> Path:
    """Write a one-experiment run as ``<root>/<model>-<engine>_<ts>/001_c1_.../``."""
    name = f"{result.model.resolved_label}-{result.engine}"
    run_dir = create_unique_dir(root, run_dir_name(name, result.window.started_at))
    return write_experiment(result, run_dir, index=1, cycle=1)
