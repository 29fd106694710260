"""``llem run``: one experiment from flags and/or a config file."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from llenergymeasure.cli.progress import RichReporter
from llenergymeasure.cli.render import print_plan, result_table, warnings_table
from llenergymeasure.cli.run_options import (
    AddressOpt,
    BatchOpt,
    ConfigArg,
    CyclesOpt,
    DatasetOpt,
    DryRunOpt,
    DtypeOpt,
    EnergyOpt,
    EngineOpt,
    ExecutorOpt,
    FailFastOpt,
    JsonOpt,
    LockTimeoutOpt,
    MaxFailuresOpt,
    MaxTokensOpt,
    ModelOpt,
    NoGapsOpt,
    NoLockOpt,
    OrderOpt,
    OutputOpt,
    PromptsOpt,
    QuietOpt,
    ReportOpt,
    ResumeOpt,
    StrictOpt,
    TimeoutOpt,
    VerboseOpt,
    WideOpt,
)
from llenergymeasure.cli.serving import print_serving_plan
from llenergymeasure.cli.signals import sigterm_stops_the_run
from llenergymeasure.cli.study import StudyOptions, parse_duration_s, run_study_file
from llenergymeasure.config.loading import (
    UserConfig,
    is_study,
    load_experiment_config,
    load_user_config,
    read_config_file,
)
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.engines.registry import Runner, find_runner
from llenergymeasure.errors import ConfigError
from llenergymeasure.experiment.options import RunOptions
from llenergymeasure.experiment.preflight import run_preflight
from llenergymeasure.experiment.reporter import NullReporter, Reporter
from llenergymeasure.experiment.run import run_experiment, write_single_run
from llenergymeasure.experiment.serving import run_serving_experiment
from llenergymeasure.records.files import load_result
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.report.html import write_report
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.isolation import run_in_runner

__all__ = ["QUICK_LOOK", "run_command"]

# With no model and no config: a quick first look, not the full methodology.
QUICK_LOOK: dict[str, Any] = {
    "task.dataset.n_prompts": 20,
    "task.max_output_tokens": 64,
    "measurement.warmup.n_warmup": 2,
}
# Batches of 4 keep the quick look around a minute on a 2-core CPU.
QUICK_LOOK_BATCH_SIZE = 4
QUICK_LOOK_LINE = (
    "Quick first look: bundled SmolLM2-135M, 20 prompts × 64 output tokens in batches of 4, "
    "2 warm-up runs. "
    "For the full defaults (100 prompts × 256 tokens, 5 warm-up runs): "
    "llem run --model smollm2-135m"
)

_BATCH_KEY = {
    "transformers": "transformers.batch_size",
    "fake": "fake.batch_size",
    "vllm": "vllm.engine.max_num_seqs",
    "tensorrt": "tensorrt.max_batch_size",
}
_DTYPE_KEY = {
    "transformers": "transformers.dtype",
    "vllm": "vllm.dtype",
    "tensorrt": "tensorrt.dtype",
}


def resolve_cli_config(
    config_file: Path | None,
    flags: dict[str, Any],
    *,
    batch_size: int | None,
    dtype: str | None,
    user: UserConfig,
) -> tuple[ExperimentConfig, bool]:
    """The config from file + flags; True when it is the zero-config quick look."""
    quick = config_file is None and "task.model" not in flags
    overrides = {**(QUICK_LOOK if quick else {}), **flags}
    config = load_experiment_config(config_file, overrides, user=user)
    if quick and batch_size is None:
        batch_size = QUICK_LOOK_BATCH_SIZE
    engine_keyed: dict[str, Any] = {}
    if batch_size is not None:
        engine_keyed[_BATCH_KEY[config.engine]] = batch_size
    if dtype is not None:
        if config.engine not in _DTYPE_KEY:
            raise ConfigError(f"--dtype does not apply to engine `{config.engine}`")
        engine_keyed[_DTYPE_KEY[config.engine]] = dtype
    if engine_keyed:
        config = load_experiment_config(config_file, {**overrides, **engine_keyed}, user=user)
    return config, quick


@sigterm_stops_the_run
def run_command(
    config_file: ConfigArg = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    dataset: DatasetOpt = None,
    n_prompts: PromptsOpt = None,
    batch_size: BatchOpt = None,
    dtype: DtypeOpt = None,
    max_output_tokens: MaxTokensOpt = None,
    energy: EnergyOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    dry_run: DryRunOpt = False,
    cycles: CyclesOpt = None,
    order: OrderOpt = None,
    no_gaps: NoGapsOpt = False,
    resume: ResumeOpt = None,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
    fail_fast: FailFastOpt = False,
    timeout: TimeoutOpt = None,
    max_consecutive_failures: MaxFailuresOpt = None,
    wide: WideOpt = False,
    quiet: QuietOpt = False,
    report: ReportOpt = False,
    verbose: VerboseOpt = False,
    strict: StrictOpt = False,
    lock_timeout: LockTimeoutOpt = None,
    no_lock: NoLockOpt = False,
) -> None:
    """Run one experiment or a study and print the result; files go under results/."""
    options = _run_options(strict, lock_timeout, no_lock)
    flags = _experiment_flags(model, engine, dataset, n_prompts, max_output_tokens, energy)
    user = load_user_config()
    out, err = _consoles(quiet)
    root = _results_root(output, user)
    study_flags = _study_flags(
        cycles, order, no_gaps, executor, address, fail_fast, timeout, max_consecutive_failures
    )
    if config_file is not None and _is_study_file(config_file):
        _refuse_per_engine_flags(batch_size, dtype)
        study = StudyOptions(root, resume, dry_run, report, wide=wide, as_json=as_json)
        # each run of the study is a process of its own: the options travel in its environment
        os.environ.update(options.environ())
        overrides = {**flags, **study_flags}
        raise typer.Exit(
            run_study_file(config_file, overrides, user=user, options=study, out=out, err=err)
        )
    if study_flags or resume is not None or wide:
        raise ConfigError(STUDY_ONLY_FLAGS)
    config, quick = resolve_cli_config(
        config_file, flags, batch_size=batch_size, dtype=dtype, user=user
    )
    _print_notes(err, config, quick=quick)
    if dry_run:
        _print_dry_run(out, config, user, options)
        return
    result, folder = _run_one(config, user, root, err, quiet=quiet, options=options)
    _print_result(out, err, result, folder, as_json=as_json, report=report)


def _consoles(quiet: bool) -> tuple[Console, Console]:
    """stdout for the result, stderr for progress and notes (silent with --quiet)."""
    # soft_wrap: one message stays one line in logs (paths must not be split).
    return Console(highlight=False), Console(
        stderr=True, quiet=quiet, highlight=False, soft_wrap=True
    )


def _refuse_per_engine_flags(batch_size: int | None, dtype: str | None) -> None:
    if batch_size is not None or dtype is not None:
        raise ConfigError(PER_ENGINE_FLAGS, hint="e.g. sweep: {transformers.batch_size: [1, 8]}")


PER_ENGINE_FLAGS = "--batch-size and --dtype are per engine; in a study, sweep them in the file"
STUDY_ONLY_FLAGS = (
    "--cycles, --order, --no-gaps, --resume, --executor, --address, --fail-fast, --timeout, "
    "--max-consecutive-failures and --wide apply to study files only"
)


def _experiment_flags(
    model: str | None,
    engine: str | None,
    dataset: str | None,
    n_prompts: int | None,
    max_output_tokens: int | None,
    energy: str | None,
) -> dict[str, Any]:
    """The experiment fields the flags set (those given)."""
    return _present(
        {
            "task.model": model,
            "engine": engine,
            "task.dataset.source": dataset,
            "task.dataset.n_prompts": n_prompts,
            "task.max_output_tokens": max_output_tokens,
            "measurement.energy_sampler": energy,
        }
    )


def _run_options(strict: bool, lock_timeout: float | None, no_lock: bool) -> RunOptions:
    """The run-time options: flags over the environment (never part of the config hash)."""
    given = RunOptions.from_environ()
    return replace(
        given,
        strict=strict or given.strict,
        lock=given.lock and not no_lock,
        lock_timeout_s=given.lock_timeout_s if lock_timeout is None else lock_timeout,
    )


def _present(values: dict[str, Any]) -> dict[str, Any]:
    """The flags that were given."""
    return {key: value for key, value in values.items() if value is not None}


def _results_root(output: Path | None, user: UserConfig) -> Path:
    root = output or Path(user.results_dir or "results")
    if root.exists() and not root.is_dir():  # before the run, not after an hour of it
        raise ConfigError(
            f"the results folder {root} is a file, not a folder",
            hint="choose a folder with --output",
        )
    return root


def _study_flags(
    cycles: int | None,
    order: str | None,
    no_gaps: bool,
    executor: str | None,
    address: str | None,
    fail_fast: bool,
    timeout: str | None,
    max_consecutive_failures: int | None,
) -> dict[str, Any]:
    gaps = {"study_execution.experiment_gap_s": 0, "study_execution.cycle_gap_s": 0}
    if max_consecutive_failures is not None and max_consecutive_failures < 1:
        raise ConfigError(
            f"--max-consecutive-failures: must be at least 1, not {max_consecutive_failures}"
        )
    return _present(
        {
            "study_execution.n_cycles": cycles,
            "study_execution.experiment_order": order,
            # --address alone means the ray executor: only it joins a cluster.
            "study_execution.executor": executor or ("ray" if address is not None else None),
            "study_execution.address": address,
            "study_execution.fail_fast": True if fail_fast else None,
            "study_execution.study_timeout_s": None
            if timeout is None
            else parse_duration_s(timeout),
            "study_execution.max_consecutive_failures": max_consecutive_failures,
            **(gaps if no_gaps else {}),
        }
    )


def _is_study_file(config_file: Path) -> bool:
    return config_file.is_file() and is_study(read_config_file(config_file))


def _print_notes(err: Console, config: ExperimentConfig, *, quick: bool) -> None:
    if quick:
        err.print(QUICK_LOOK_LINE)
    if config.task.trust_remote_code:
        err.print(
            "[yellow]note:[/] trust_remote_code is true: the model folder's own code will run"
        )


def _print_dry_run(
    out: Console, config: ExperimentConfig, user: UserConfig, options: RunOptions
) -> None:
    """What the run would do, checked by pre-flight, without running it."""
    if config.mode == "serving":
        print_serving_plan(out, config, user=user, strict=options.strict)
    else:
        print_plan(out, config, run_preflight(config, user=user, strict=options.strict))


def _run_one(
    config: ExperimentConfig,
    user: UserConfig,
    root: Path,
    err: Console,
    *,
    quiet: bool,
    options: RunOptions,
) -> tuple[ExperimentResult, Path]:
    """One experiment, here or in its engine's runner; its result and folder."""
    reporter = NullReporter() if quiet else RichReporter(err)
    if config.mode == "serving":  # the load runs here; a launched server in its environment
        result, folder = run_serving_experiment(
            config, output_dir=root, reporter=reporter, user_config=user, options=options
        )
        assert folder is not None
        return result, folder
    runner = find_runner(config.engine, user.runners)
    if runner is None:
        result = run_experiment(config, reporter=reporter, user_config=user, options=options)
        return result, write_single_run(result, root)
    # the engine lives in another environment: run there, read the result back; the
    # options travel in the runner's environment
    os.environ.update(options.environ())
    err.print(f"engine `{config.engine}` runs in {runner.python} ({runner.source})")
    folder = _run_in_runner(config, runner, root, reporter)
    return load_result(folder), folder


def _print_result(
    out: Console,
    err: Console,
    result: ExperimentResult,
    folder: Path,
    *,
    as_json: bool,
    report: bool,
) -> None:
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        out.print(result_table(result))
        table = warnings_table(result)
        if table is not None:
            out.print(table)
    err.print(f"results written to {folder}")
    if report:
        err.print(f"report written to {write_report(folder.parent)}")


def _run_in_runner(
    config: ExperimentConfig, runner: Runner, root: Path, reporter: Reporter
) -> Path:
    """One experiment in the runner's interpreter, its steps shown as they start."""
    with contextlib.ExitStack() as steps:

        def show(event: RunEvent) -> None:
            if event.kind == "phase":
                steps.close()  # the previous step ended when this one started
                steps.enter_context(reporter.step(event.text))
            elif event.kind == "progress" and event.total is not None:
                if event.done == 0:
                    reporter.start_progress(event.total, event.text)
                reporter.advance(event.done or 0)

        return run_in_runner(config, runner, results_root=root, on_progress=show)
