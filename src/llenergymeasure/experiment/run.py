"""The experiment spine: one experiment, step by step (DESIGN §4)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

from llenergymeasure.config.loading import UserConfig, load_user_config, validate_experiment
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.telemetry import TelemetrySource, close_sources
from llenergymeasure.energy.trace import PowerTrace
from llenergymeasure.engines.base import Engine
from llenergymeasure.experiment.baseline import take_baseline
from llenergymeasure.experiment.loading import load_model, prepare_prompts
from llenergymeasure.experiment.measurement import measure_window
from llenergymeasure.experiment.metrics import build_result
from llenergymeasure.experiment.preflight import run_preflight
from llenergymeasure.experiment.reporter import NullReporter, Reporter
from llenergymeasure.experiment.serving import run_serving_experiment
from llenergymeasure.experiment.warmup import run_warmup
from llenergymeasure.records.files import create_unique_dir, run_dir_name, write_experiment
from llenergymeasure.records.result import ExperimentResult, TimingResult
from llenergymeasure.system.environment import EnvironmentCapture

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
) -> ExperimentResult:
    """Run one experiment and return its result; with ``output_dir`` also write its files.

    ``engine``, ``sampler`` and ``telemetry`` replace the ones the config and host
    would give (tests pass fakes: the fake engine, a simulated NVML, ...).
    """
    if not isinstance(config, ExperimentConfig):
        config = validate_experiment(config)
    if config.mode == "serving":  # a server under load: its own spine (experiment/serving.py)
        return run_serving_experiment(
            config,
            output_dir=output_dir,
            sampler=sampler,
            telemetry=telemetry,
            reporter=reporter,
            user_config=user_config,
        )[0]
    reporter = reporter or NullReporter()
    user = user_config if user_config is not None else load_user_config()
    clock = _StepClock()
    environment = EnvironmentCapture().start()  # 2. environment snapshot, in the background
    with clock("preflight_s"), reporter.step("pre-flight"):  # 1. every problem at once
        plan = run_preflight(config, user=user, engine=engine, sampler=sampler, telemetry=telemetry)
    with ExitStack() as cleanup:  # released in reverse: trace, model, telemetry sources
        cleanup.callback(close_sources, plan.sources)
        with clock("baseline_s"), reporter.step("baseline"):  # 3. idle power, before loading
            baseline, baseline_note = take_baseline(plan, reporter)
        with clock("load_s"), reporter.step("loading model"):  # 4. load
            model = cleanup.enter_context(closing(load_model(plan)))
        with clock("prepare_s"), reporter.step("preparing prompts"):  # 5. outside the window
            prompts = prepare_prompts(plan, model)
        trace = PowerTrace(plan.sources, config.measurement.sample_interval_ms).start()
        cleanup.callback(trace.stop)
        with clock("warmup_s"), reporter.step("warm-up"):  # 6. warm-up, thermal floor
            trace.mark("warmup_start")
            warmup = run_warmup(
                model,
                prompts.warmup,
                config.measurement.warmup,
                on_gpu=plan.on_gpu,
                reporter=reporter,
            )
        with clock("measure_s"), reporter.step("measuring"):  # 7. the window
            window = measure_window(model, prompts.prepared, plan.sampler, reporter, trace)
        recorded = trace.stop()
    # 8. metrics, warnings and the result object
    result = build_result(
        plan,
        model.info,
        prompts.ids,
        warmup=warmup,
        window=window,
        timings=clock.result(window.duration_s),
        environment=environment.result(),
        baseline=baseline,
        baseline_note=baseline_note,
        trace=recorded,
    )
    if output_dir is not None:
        write_single_run(result, Path(output_dir))
    return result


class _StepClock:
    """Wall time of each step: ``with clock("load_s"): ...`` times that block."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[step] = time.perf_counter() - began

    def result(self, window_s: float) -> TimingResult:
        return TimingResult(
            **self._seconds, window_s=window_s, total_s=time.perf_counter() - self._start
        )


def write_single_run(result: ExperimentResult, root: Path) -> Path:
    """Write a one-experiment run as ``<root>/<model>-<engine>_<ts>/001_c1_.../``."""
    name = f"{result.model.resolved_label}-{result.engine}"
    run_dir = create_unique_dir(root, run_dir_name(name, result.window.started_at))
    return write_experiment(result, run_dir, index=1, cycle=1)
