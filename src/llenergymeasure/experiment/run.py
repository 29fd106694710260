"""The experiment spine: one experiment, step by step (DESIGN §4)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llenergymeasure.config.loading import UserConfig, load_user_config, validate_experiment
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.engines.base import Engine
from llenergymeasure.experiment.loading import load_model, prepare_prompts
from llenergymeasure.experiment.measurement import measure_window
from llenergymeasure.experiment.metrics import build_result
from llenergymeasure.experiment.preflight import run_preflight
from llenergymeasure.experiment.reporter import NullReporter, Reporter
from llenergymeasure.experiment.warmup import run_warmup
from llenergymeasure.results.models import (
    ExperimentResult,
    TimingResult,
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
    # 8. metrics, warnings and the result object
    timings = TimingResult(
        preflight_s=t_preflight - t_start,
        load_s=t_load - t_preflight,
        prepare_s=t_prepare - t_load,
        warmup_s=t_warmup - t_prepare,
        window_s=window.duration_s,
        total_s=time.perf_counter() - t_start,
    )
    result = build_result(
        plan, model.info, prompts.ids, warmup, window, timings, environment.result()
    )
    if output_dir is not None:
        write_single_run(result, Path(output_dir))
    return result


def write_single_run(result: ExperimentResult, root: Path) -> Path:
    """Write a one-experiment run as ``<root>/<model>-<engine>_<ts>/001_c1_.../``."""
    name = f"{result.model.resolved_label}-{result.engine}"
    run_dir = create_unique_dir(root, run_dir_name(name, result.window.started_at))
    return write_experiment(result, run_dir, index=1, cycle=1)
