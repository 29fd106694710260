"""The serving experiment spine (``mode: serving``): a server under an arrival process.

1. pre-flight (``serving_plan``); the environment snapshot starts in the background;
2. the devices locked (one lock per GPU UUID in scope, one for RAPL's CPU packages) until
   the server stops; for a launched server, the GPUs' idle power with no CUDA context;
3. the server: launched and health-checked (its log in the run folder), or the endpoint;
   baseline: idle power with the server up and the model loaded, before any request (an
   endpoint's server already holds its context, so it has no no-context figure);
4. the power trace starts; warm-up requests (and the thermal floor on a GPU);
5. the load (``serving_load``): arrivals on schedule, every token timed; the energy
   sampler's window is the steady-state window, between ramp-up and drain;
6. the result (``serving_result``), written with the server's log beside it.

The server is stopped on every way out: success, failure, Ctrl-C. When it dies during the
load the run fails, and what the load recorded is kept in ``partial.json``, marked
incomplete.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from llenergymeasure.config.loading import UserConfig, load_user_config
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy.telemetry import close_sources
from llenergymeasure.energy.trace import PowerTrace
from llenergymeasure.errors import ServerError
from llenergymeasure.experiment.baseline import Idle, take_baseline, take_idle_no_context
from llenergymeasure.experiment.device_lock import locked_devices
from llenergymeasure.experiment.options import Overrides, RunOptions
from llenergymeasure.experiment.reporter import NullReporter, Reporter
from llenergymeasure.experiment.serving_load import (
    Driven,
    Server,
    drive_load,
    start_server,
    warm_up,
)
from llenergymeasure.experiment.serving_plan import ServingPlan, plan_serving
from llenergymeasure.experiment.serving_result import build_serving_result, write_partial
from llenergymeasure.experiment.step_clock import StepClock
from llenergymeasure.records.files import create_unique_dir, run_dir_name, write_experiment
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.serving.client import InFlight
from llenergymeasure.serving.load import LoadAbortedError, LoadRecord
from llenergymeasure.serving.metrics import TokenCounter, finished_records
from llenergymeasure.system.environment import EnvironmentCapture, capture_environment

__all__ = ["SERVING_STATE", "run_serving_experiment", "serving_engine_state"]

SERVING_STATE = "server up, model loaded, idle (before any request)"
_ENDPOINT_NO_IDLE = (
    "not measured: the endpoint's server already held its CUDA context when the run began, "
    "so the GPUs' idle power without one cannot be read"
)


def run_serving_experiment(
    config: ExperimentConfig,
    *,
    output_dir: Path | str | None = None,
    reporter: Reporter | None = None,
    user_config: UserConfig | None = None,
    options: RunOptions | None = None,
    overrides: Overrides = Overrides(),
) -> tuple[ExperimentResult, Path | None]:
    """Run one serving experiment; with ``output_dir`` write it there, and return the
    result and its folder (None without ``output_dir``). ``options`` (strict, device locks)
    default to the environment's; ``overrides`` replace the sampler, telemetry or pynvml
    (tests)."""
    reporter = reporter or NullReporter()
    options = options if options is not None else RunOptions.from_environ()
    clock = StepClock(prepare_s=0.0)  # prompts load in pre-flight
    nvml = overrides.nvml
    environment = EnvironmentCapture(lambda: capture_environment(nvml=nvml)).start()
    with clock("preflight_s"), reporter.step("pre-flight"):  # 1. every problem at once
        user = user_config if user_config is not None else load_user_config()
        plan = plan_serving(config, user=user, strict=options.strict, overrides=overrides)
    run_dir = _run_dir(plan, output_dir)
    with ExitStack() as cleanup:  # released in reverse: trace, server, locks, telemetry
        cleanup.callback(close_sources, plan.sources)
        cleanup.enter_context(locked_devices(plan, options, reporter))  # 2. the devices
        with clock("baseline_s"), reporter.step("idle power before the server starts"):
            idle = _idle_no_context(plan, reporter)
        with clock("load_s"), reporter.step("starting the server"):  # 3. up and healthy
            server = cleanup.enter_context(start_server(plan, run_dir))
        with clock("baseline_s", add=True), reporter.step("baseline"):  # idle, model resident
            baseline = _baseline(plan, reporter)
        trace = PowerTrace(plan.sources, config.measurement.sample_interval_ms).start()
        cleanup.callback(trace.stop)
        with clock("warmup_s"), reporter.step("warm-up"):  # 4. warm-up, thermal floor
            trace.mark("warmup_start")
            warmup = warm_up(plan, server, reporter)
        with clock("measure_s"), reporter.step("measuring under load"):  # 5. the load
            driven = _drive(plan, server, trace, run_dir)
        recorded = trace.stop()
    result = build_serving_result(  # 6. metrics, warnings, the result object
        plan,
        server,
        driven,
        warmup=warmup,
        timings=clock.result(_window_s(driven.record)),
        environment=environment.result(),
        baseline=baseline,
        idle_no_context=idle,
        trace=recorded,
        count_tokens=_token_counter(plan, driven.record.requests),
    )
    return result, (_write(result, run_dir) if run_dir is not None else None)


def _run_dir(plan: ServingPlan, output_dir: Path | str | None) -> Path | None:
    """The run's folder, made before the server starts so that its log can go there."""
    if output_dir is None:
        return None
    engine = plan.config.engine if plan.serving.server == "launch" else "endpoint"
    label = plan.model.label if plan.model is not None else plan.model_name.split("/")[-1]
    name = run_dir_name(f"{label}-{engine}-serving", datetime.now(timezone.utc))
    return create_unique_dir(Path(output_dir), name)


def _drive(plan: ServingPlan, server: Server, trace: PowerTrace, run_dir: Path | None) -> Driven:
    """The load; when it stops early, keep what it recorded and fail the run."""
    try:
        driven = drive_load(plan, server, trace)
    except LoadAbortedError as err:
        raise _failed(plan, server, err.record, err.reason, run_dir) from err
    requests = driven.record.requests
    if requests and not any(r.completed for r in requests):
        first = next((r.error for r in requests if r.error), "no answer")
        raise _failed(plan, server, driven.record, f"every request failed ({first})", run_dir)
    return driven


def _failed(
    plan: ServingPlan, server: Server, record: LoadRecord, reason: str, run_dir: Path | None
) -> ServerError:
    """The run's error, once what the load recorded is kept in partial.json."""
    records = finished_records(record, plan.serving.slo)
    where = write_partial(records, reason, run_dir)
    return ServerError(
        f"{reason}; the run failed after {len(records)} requests, and what they recorded "
        f"is kept, marked incomplete, in {where}",
        hint="see the server's log" if server.launched is not None else None,
    )


def _write(result: ExperimentResult, run_dir: Path) -> Path:
    """The experiment folder inside the run folder, with the server's log moved into it."""
    folder = write_experiment(result, run_dir, index=1, cycle=1)
    log = run_dir / "server.log"
    if log.is_file():
        log.replace(folder / "server.log")
    return folder


def _baseline(plan: ServingPlan, reporter: Reporter) -> Idle:
    """Idle power with the server up and its model loaded, keyed on the server's state."""
    return take_baseline(plan, reporter, engine=serving_engine_state(plan), state=SERVING_STATE)


def _idle_no_context(plan: ServingPlan, reporter: Reporter) -> Idle:
    """Before a launched server starts, the GPUs' idle power with no CUDA context."""
    if plan.serving.server == "endpoint" and plan.scope_gpus:
        return None, _ENDPOINT_NO_IDLE
    return take_idle_no_context(plan, reporter)


def serving_engine_state(plan: ServingPlan) -> str:
    """What the server holds on the devices, for the baseline cache: a launched server's
    engine, settings, model and launch arguments; an endpoint's address and served model."""
    config = plan.config
    if plan.serving.server == "endpoint":
        return json.dumps(["endpoint", plan.serving.endpoint, plan.model_name])
    section = getattr(config, config.engine, None)
    settings = section.model_dump(mode="json") if section is not None else None
    model = str(plan.model.path) if plan.model is not None else plan.model_name
    launch = plan.serving.launch.extra_args
    return json.dumps(["launch", config.engine, settings, model, launch], sort_keys=True)


def _token_counter(plan: ServingPlan, requests: Sequence[InFlight]) -> TokenCounter | None:
    """The model's tokenizer, loaded only when a completed request had no usage figure."""
    if plan.model is None or not any(r.completed and r.n_output_tokens is None for r in requests):
        return None
    from llenergymeasure.engines.model_files import hf_folder

    with contextlib.suppress(Exception):  # no tokenizer: counted as chunks, and said so
        from transformers import AutoTokenizer

        folder, _ = hf_folder(plan.model)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        return lambda text: len(tokenizer.encode(text, add_special_tokens=False))
    return None


def _window_s(record: LoadRecord) -> float:
    """The steady-state window's length (0 when the load never opened it)."""
    start = record.window_start_s or 0.0
    end = record.window_end_s if record.window_end_s is not None else start
    return end - start
