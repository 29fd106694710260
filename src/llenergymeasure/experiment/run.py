"""The experiment spine: one experiment, step by step (DESIGN §4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

from llenergymeasure.config.loading import UserConfig, load_user_config, validate_experiment
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.telemetry import TelemetrySource, close_sources
from llenergymeasure.energy.trace import PowerTrace
from llenergymeasure.engines.base import Engine
from llenergymeasure.experiment.baseline import (
    engine_state,
    take_baseline,
    take_idle_no_context,
)
from llenergymeasure.experiment.device_lock import locked_devices
from llenergymeasure.experiment.loading import load_model, prepare_prompts
from llenergymeasure.experiment.measurement import measure_window
from llenergymeasure.experiment.metrics import build_result
from llenergymeasure.experiment.options import Overrides, RunOptions
from llenergymeasure.experiment.preflight import Plan, run_preflight
from llenergymeasure.experiment.reporter import NullReporter, Reporter
from llenergymeasure.experiment.serving import run_serving_experiment
from llenergymeasure.experiment.step_clock import StepClock
from llenergymeasure.experiment.warmup import run_warmup
from llenergymeasure.records.files import create_unique_dir, run_dir_name, write_experiment
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.system.environment import EnvironmentCapture, capture_environment

__all__ = ["run_experiment", "write_single_run"]


def run_experiment(
    config: ExperimentConfig | Mapping[str, Any],
    *,
    output_dir: Path | str | None = None,
    engine: Engine | None = None,
    sampler: EnergySampler | None = None,
    telemetry: Sequence[TelemetrySource] | None = None,
    reporter: Reporter | None = None,
    user_config: UserConfig | None = None,
    options: RunOptions | None = None,
    nvml: object | None = None,
) -> ExperimentResult:
    """Run one experiment and return its result; with ``output_dir`` also write its files.

    ``engine``, ``sampler`` and ``telemetry`` replace the ones the config and host
    would give, and ``nvml`` stands in for pynvml (tests pass fakes: the fake engine, a
    simulated NVML, ...). ``options`` are run-time options (strict pre-flight, device
    locks), not part of what is measured; by default they come from the environment.
    """
    if not isinstance(config, ExperimentConfig):
        config = validate_experiment(config)
    overrides = Overrides(engine=engine, sampler=sampler, telemetry=telemetry, nvml=nvml)
    if config.mode == "serving":  # a server under load: its own spine (experiment/serving.py)
        return run_serving_experiment(
            config,
            output_dir=output_dir,
            reporter=reporter,
            user_config=user_config,
            options=options,
            overrides=overrides,
        )[0]
    reporter = reporter or NullReporter()
    user = user_config if user_config is not None else load_user_config()
    options = options if options is not None else RunOptions.from_environ()
    clock = StepClock()
    # 2. environment snapshot, in the background
    environment = EnvironmentCapture(lambda: capture_environment(nvml=nvml)).start()
    with clock("preflight_s"), reporter.step("pre-flight"):  # 1. every problem at once
        plan = run_preflight(config, user=user, strict=options.strict, overrides=overrides)
    result = _measure(plan, options, reporter, clock, environment)  # 3.-9.
    if output_dir is not None:
        write_single_run(result, Path(output_dir))
    return result


def _measure(
    plan: Plan,
    options: RunOptions,
    reporter: Reporter,
    clock: StepClock,
    environment: EnvironmentCapture,
) -> ExperimentResult:
    """Steps 3 to 9: 3 to 8 with the devices locked throughout, everything released on
    every exit; then the result."""
    config = plan.config
    with ExitStack() as cleanup:  # released in reverse: trace, model, locks, telemetry
        cleanup.callback(close_sources, plan.sources)
        cleanup.enter_context(locked_devices(plan, options, reporter))  # 3. the devices
        with clock("baseline_s"), reporter.step("idle power before loading"):
            idle = take_idle_no_context(plan, reporter)
        with clock("load_s"), reporter.step("loading model"):  # 4. load
            model = cleanup.enter_context(closing(load_model(plan)))
        with clock("baseline_s", add=True), reporter.step("baseline"):  # 5. loaded, idle
            baseline = take_baseline(plan, reporter, engine=engine_state(plan))
        with clock("prepare_s"), reporter.step("preparing prompts"):  # 6. outside the window
            prompts = prepare_prompts(plan, model)
        trace = PowerTrace(plan.sources, config.measurement.sample_interval_ms).start()
        cleanup.callback(trace.stop)
        with clock("warmup_s"), reporter.step("warm-up"):  # 7. warm-up, busy through the floor
            trace.mark("warmup_start")
            warmup = run_warmup(
                model,
                prompts.warmup,
                config.measurement.warmup,
                on_gpu=plan.on_gpu,
                reporter=reporter,
            )
        with clock("measure_s"), reporter.step("measuring"):  # 8. the window
            window = measure_window(
                model,
                prompts.prepared,
                plan.sampler,
                reporter,
                trace,
                min_window_s=config.measurement.min_window_for(on_gpu=plan.on_gpu),
            )
        recorded = trace.stop()
    return build_result(  # 9. metrics, warnings and the result object
        plan,
        model.info,
        prompts.ids,
        warmup=warmup,
        window=window,
        timings=clock.result(window.duration_s),
        environment=environment.result(),
        baseline=baseline,
        idle_no_context=idle,
        trace=recorded,
    )


def write_single_run(result: ExperimentResult, root: Path) -> Path:
    """Write a one-experiment run as ``<root>/<model>-<engine>_<ts>/001_c1_.../``."""
    name = f"{result.model.resolved_label}-{result.engine}"
    run_dir = create_unique_dir(root, run_dir_name(name, result.window.started_at))
    return write_experiment(result, run_dir, index=1, cycle=1)
