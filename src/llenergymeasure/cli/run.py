"""``llem run``: one experiment from flags and/or a config file."""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, ParamSpec, TypeVar

import typer
import yaml
from rich.console import Console
from rich.table import Table

from llenergymeasure.cli.progress import RichReporter
from llenergymeasure.cli.render import result_table, warnings_table
from llenergymeasure.cli.study import (
    RichStudyReporter,
    SkippableSleep,
    find_resume_dir,
    plan_table,
    summary_table,
)
from llenergymeasure.config.loading import (
    UserConfig,
    is_study,
    load_experiment_config,
    load_user_config,
    read_config_file,
)
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import load_study
from llenergymeasure.engines.registry import Runner, find_runner
from llenergymeasure.errors import ConfigError
from llenergymeasure.experiment.preflight import Plan, run_preflight
from llenergymeasure.experiment.reporter import NullReporter, Reporter
from llenergymeasure.experiment.run import run_experiment, write_single_run
from llenergymeasure.results.persistence import load_result
from llenergymeasure.results.report import write_report
from llenergymeasure.study.estimate import estimate_duration
from llenergymeasure.study.isolation import run_in_runner
from llenergymeasure.study.run import run_study
from llenergymeasure.system.gpus import list_gpus

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


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _sigterm_stops_the_run(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """While ``command`` runs, SIGTERM stops it like Ctrl-C (DESIGN §6).

    A batch scheduler, ``kill`` or a container stop sends SIGTERM; without this the
    process would die at once, leaving the running child and a `running` manifest entry.
    As KeyboardInterrupt it takes the Ctrl-C path: the child's process group is killed,
    its entry marked interrupted, and the exit code is 130.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    @functools.wraps(command)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if threading.current_thread() is not threading.main_thread():
            return command(*args, **kwargs)  # only the main thread may set signal handlers
        previous = signal.signal(signal.SIGTERM, interrupt)
        try:
            return command(*args, **kwargs)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


@_sigterm_stops_the_run
def run_command(
    config_file: Path | None = typer.Argument(
        None, metavar="[CONFIG]", help="experiment YAML/JSON file", show_default=False
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="alias, local folder, .gguf, or cached HF id"
    ),
    engine: str | None = typer.Option(
        None, "--engine", "-e", help="transformers (default) or fake"
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="builtin, a .jsonl path, or synthetic"
    ),
    n_prompts: int | None = typer.Option(None, "-n", "--n-prompts", help="number of prompts"),
    batch_size: int | None = typer.Option(None, "--batch-size", "-b", help="requests per batch"),
    dtype: str | None = typer.Option(None, "--dtype", help="float32, float16 or bfloat16"),
    max_output_tokens: int | None = typer.Option(
        None, "--max-output-tokens", help="max new tokens"
    ),
    energy: str | None = typer.Option(
        None, "--energy", help="energy sampler: auto, estimate, none, …"
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="results folder (default: results/)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON on stdout"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="validate and print the plan; run nothing"
    ),
    cycles: int | None = typer.Option(None, "--cycles", help="study: cycles per config"),
    order: str | None = typer.Option(
        None, "--order", help="study: sequential, interleave, shuffle, reverse, latin_square"
    ),
    no_gaps: bool = typer.Option(False, "--no-gaps", help="study: no thermal gaps"),
    resume: str | None = typer.Option(
        None,
        "--resume",
        help="study: finish the latest study of this file, or the study folder given",
    ),
    executor: str | None = typer.Option(
        None, "--executor", help="study: local (one run at a time here) or ray (one per GPU)"
    ),
    address: str | None = typer.Option(
        None, "--address", help="study: the Ray cluster to join (auto, ray://head:10001)"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress on stderr"),
    report: bool = typer.Option(
        False, "--report", help="also write report.html (tables and plots) into the results folder"
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="tracebacks on errors"),
) -> None:
    """Run one experiment or a study and print the result; files go under results/."""
    flags = {
        key: value
        for key, value in {
            "task.model": model,
            "engine": engine,
            "task.dataset.source": dataset,
            "task.dataset.n_prompts": n_prompts,
            "task.max_output_tokens": max_output_tokens,
            "measurement.energy_sampler": energy,
        }.items()
        if value is not None
    }
    user = load_user_config()
    # soft_wrap: one message stays one line in logs (paths must not be split).
    err = Console(stderr=True, quiet=quiet, highlight=False, soft_wrap=True)
    out = Console(highlight=False)
    root = output or Path(user.results_dir or "results")
    if root.exists() and not root.is_dir():  # before the run, not after an hour of it
        raise ConfigError(
            f"the results folder {root} is a file, not a folder",
            hint="choose a folder with --output",
        )
    study_flags = {
        "study_execution.n_cycles": cycles,
        "study_execution.experiment_order": order,
        # --address alone means the ray executor: only it joins a cluster.
        "study_execution.executor": executor or ("ray" if address is not None else None),
        "study_execution.address": address,
        **(
            {"study_execution.experiment_gap_s": 0, "study_execution.cycle_gap_s": 0}
            if no_gaps
            else {}
        ),
    }
    if (
        config_file is not None
        and config_file.is_file()
        and is_study(read_config_file(config_file))
    ):
        if batch_size is not None or dtype is not None:
            raise ConfigError(
                "--batch-size and --dtype are per engine; in a study, sweep them in the file",
                hint="e.g. sweep: {transformers.batch_size: [1, 8]}",
            )
        overrides = {**flags, **{k: v for k, v in study_flags.items() if v is not None}}
        code = run_study_file(
            config_file,
            overrides,
            user=user,
            root=root,
            resume=resume,
            dry_run=dry_run,
            report=report,
            out=out,
            err=err,
        )
        raise typer.Exit(code)
    if any(v is not None for v in (cycles, order, resume, executor, address)) or no_gaps:
        raise ConfigError(
            "--cycles, --order, --no-gaps, --resume, --executor and --address apply to study "
            "files only"
        )
    config, quick = resolve_cli_config(
        config_file, flags, batch_size=batch_size, dtype=dtype, user=user
    )
    if quick:
        err.print(QUICK_LOOK_LINE)
    if config.task.trust_remote_code:
        err.print(
            "[yellow]note:[/] trust_remote_code is true: the model folder's own code will run"
        )
    if dry_run:
        plan = run_preflight(config, user=user)
        _print_plan(out, config, plan)
        return
    reporter = NullReporter() if quiet else RichReporter(err)
    runner = find_runner(config.engine, user.runners)
    if runner is None:
        result = run_experiment(config, reporter=reporter, user_config=user)
        folder = write_single_run(result, root)
    else:  # the engine lives in another environment: run there, read the result back
        err.print(f"engine `{config.engine}` runs in {runner.python} ({runner.source})")
        folder = _run_in_runner(config, runner, root, reporter)
        result = load_result(folder)
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


def run_study_file(
    path: Path,
    overrides: dict[str, Any],
    *,
    user: UserConfig,
    root: Path,
    resume: str | None,
    dry_run: bool,
    report: bool = False,
    out: Console,
    err: Console,
) -> int:
    """Plan, then run (or resume) a study; returns the exit code (0, 1 or 130)."""
    plan = load_study(path, overrides, user=user)
    n_remote = sum(config.task.trust_remote_code for config in plan.configs)
    if n_remote:
        err.print(
            f"[yellow]note:[/] trust_remote_code is true in {n_remote} of {len(plan.configs)} "
            "configs: those model folders' own code will run"
        )
    # Only the default thermal gaps depend on it; no torch in the parent. On a Ray cluster
    # the runs' GPUs count, not this machine's: run_study asks the cluster once joined.
    on_ray = plan.execution.executor == "ray"
    on_gpu = plan.execution.gpus_per_run != 0 if on_ray else bool(list_gpus()[0])
    if dry_run:
        out.print(plan_table(plan, estimate_duration(plan, on_gpu=on_gpu, results_root=root)))
        return 0
    resume_dir = None
    if resume is not None:
        resume_dir = find_resume_dir(root, plan.name) if resume == "latest" else Path(resume)
    with RichStudyReporter(err, plan) as reporter:
        outcome = run_study(
            plan,
            results_root=root,
            resume_dir=resume_dir,
            reporter=reporter,
            sleep=SkippableSleep(),
            on_gpu=None if on_ray else on_gpu,
        )
    out.print(summary_table(outcome.result))
    err.print(f"study written to {outcome.study_dir}")
    if report:
        err.print(f"report written to {write_report(outcome.study_dir)}")
    if outcome.status == "interrupted":
        err.print(f"interrupted; finish it with: llem run {path} --resume {outcome.study_dir}")
    return outcome.exit_code


def _print_plan(out: Console, config: ExperimentConfig, plan: Plan) -> None:
    out.print("# resolved config", style="bold")
    out.print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), markup=False)
    table = Table(title="plan (nothing has run)", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    task = config.task
    memory = f"~{plan.memory_estimate_mib:,.0f} MiB" if plan.memory_estimate_mib else "unknown"
    warm = config.measurement.warmup
    for name, value in [
        ("runs", "1 experiment, 1 cycle"),
        ("engine", f"{plan.engine.name} on {', '.join(plan.devices)}" + _in(plan.runner)),
        ("model", f"{task.model} → {plan.model.path} ({plan.model.kind})"),
        ("prompts", f"{task.dataset.n_prompts} from {task.dataset.source}, {task.dataset.order}"),
        (
            "tokens",
            f"input ≤ {task.max_input_tokens}, output ≤ {task.max_output_tokens} per prompt",
        ),
        ("batch size", str(config.batch_size)),
        ("warm-up", f"{warm.n_warmup} runs of one batch" if warm.enabled else "disabled"),
        ("energy sampler", f"{plan.sampler.name}: {plan.sampler_reason}"),
        ("model memory estimate", memory),
        ("config hash", json.dumps(_hash(config))),
    ]:
        table.add_row(name, value)
    out.print(table)


def _in(runner: Runner | None) -> str:
    return "" if runner is None else f", run by {runner.python} ({runner.source})"


def _run_in_runner(
    config: ExperimentConfig, runner: Runner, root: Path, reporter: Reporter
) -> Path:
    """One experiment in the runner's interpreter, its steps shown as they start."""
    with contextlib.ExitStack() as steps:

        def show(step: str) -> None:
            steps.close()  # the previous step ended when this one started
            steps.enter_context(reporter.step(step))

        return run_in_runner(config, runner, results_root=root, on_progress=show)


def _hash(config: ExperimentConfig) -> str:
    from llenergymeasure.config.hashing import measurement_config_hash

    return measurement_config_hash(config)
