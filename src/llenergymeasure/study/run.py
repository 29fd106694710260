"""The study spine: every planned run, each in its own subprocess, ledger kept (DESIGN §6)."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from threading import Event
from typing import Any, Protocol

import yaml

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.order import effective_gaps
from llenergymeasure.config.study import load_study
from llenergymeasure.records.files import atomic_write_text, create_unique_dir, run_dir_name
from llenergymeasure.study.control import BREAKER_PAUSE_S, INTERRUPTED, RunControl, Stop
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.isolation import RunLimits, RunOutcome, run_isolated
from llenergymeasure.study.live import LiveStatus
from llenergymeasure.study.lock import study_lock
from llenergymeasure.study.manifest import Ledger, Manifest, ManifestEntry, remaining
from llenergymeasure.study.models import (
    StudyPlanLike,
    StudyProtocol,
    StudyResult,
    StudyStatus,
    check_plan,
)
from llenergymeasure.study.ray_executor import RayExecutor, ray_executor_for
from llenergymeasure.study.ray_session import ExecutorCall
from llenergymeasure.study.recovery import recover
from llenergymeasure.study.reporter import NullStudyReporter, StudyReporter
from llenergymeasure.study.signals import interrupts_held
from llenergymeasure.study.stats import STUDY_FILE, STUDY_RESULT_FILE, build_study_result
from llenergymeasure.system.gpus import list_gpus

__all__ = ["BREAKER_PAUSE_S", "EXIT_TIMED_OUT", "RunOne", "StudyOutcome", "run_study"]

# The exit code of a study whose time budget ran out before every run was done: the
# code GNU timeout uses. `--resume` continues the study.
EXIT_TIMED_OUT = 124


class RunOne(Protocol):
    """Runs one experiment and says how it ended (:func:`run_isolated` or a stand-in)."""

    def __call__(
        self,
        config: ExperimentConfig,
        *,
        study_dir: Path,
        index: int,
        cycle: int,
        limits: RunLimits,
        on_progress: Callable[[RunEvent], None] | None = None,
        stop_event: Event | None = None,
    ) -> RunOutcome: ...


@dataclass(frozen=True)
class StudyOutcome:
    """How ``run_study`` ended, with the final manifest and ``study_result.json`` content."""

    status: StudyStatus
    study_dir: Path
    manifest: Manifest
    result: StudyResult

    @property
    def exit_code(self) -> int:
        """0 all completed, 124 the time budget ran out, 130 interrupted, 1 otherwise."""
        if self.status == "completed":
            return 0
        if self.status == "timed_out":
            return EXIT_TIMED_OUT
        return 130 if self.status == "interrupted" else 1


@dataclass(frozen=True)
class _Session:
    """What one call of ``run_study`` runs with, besides the plan and the ledger."""

    protocol: StudyProtocol
    reporter: StudyReporter
    run_one: RunOne
    sleep: Callable[[float], object] | None
    stop: Event
    executor: RayExecutor | None


def run_study(
    plan: StudyPlanLike | Path | str,
    *,
    results_root: Path,
    resume_dir: Path | None = None,
    reporter: StudyReporter | None = None,
    run_one: RunOne = run_isolated,
    sleep: Callable[[float], object] | None = None,
    stop_event: Event | None = None,
    on_gpu: bool | None = None,
    executor: RayExecutor | None = None,
) -> StudyOutcome:
    """Run every planned run not yet completed, in order; record each in the manifest.

    ``plan`` is an expanded study, or the path of a study file. A failing experiment is
    recorded and the study goes on, unless ``fail_fast`` is set; ``max_consecutive_failures``
    in a row pause the study, and a failing probe run after the pause aborts it. With
    ``study_timeout_s`` no run starts that cannot end within it (``stop_event`` is set
    when it runs out). Ctrl-C, SIGTERM or ``stop_event`` kills the running child and
    returns status ``interrupted``. A resumed study first adopts the run folders a crash
    left unrecorded (``study.recovery``). Raises StudyError when ``resume_dir`` was
    started from another design, or is running in another process.

    ``study_execution.executor`` says where the runs go: ``local`` runs them here one at
    a time through ``run_one``; ``ray`` (or an ``executor`` given) runs them as Ray tasks,
    one per GPU, into the same study folder and manifest.
    """
    if isinstance(plan, str | Path):
        plan = load_study(Path(plan))
    executor = executor or ray_executor_for(plan.execution)
    # Joining the cluster comes first: without Ray, no study folder is made.
    with executor if executor is not None else contextlib.nullcontext():
        if executor is not None:  # every run must fit the cluster, before any folder is made
            runs_use_gpus = executor.prepare(plan.configs)
            on_gpu = runs_use_gpus if on_gpu is None else on_gpu
        elif on_gpu is None:  # only the default thermal gaps depend on it
            on_gpu = bool(list_gpus()[0])
        session = _Session(
            _protocol(plan, on_gpu),
            reporter or NullStudyReporter(),
            run_one,
            sleep,
            stop_event or Event(),
            executor,
        )
        with _open_ledger(plan, results_root, resume_dir) as ledger:  # 1. folder and manifest
            return _run(ledger, dict(zip(plan.config_hashes, plan.configs, strict=True)), session)


def _run(ledger: Ledger, configs: Mapping[str, ExperimentConfig], s: _Session) -> StudyOutcome:
    began = time.monotonic()
    control = RunControl(s.protocol, ledger.manifest.entries)
    live = LiveStatus(
        ledger.study_dir, s.reporter, s.protocol, budget_left_s=control.deadline_left_s
    )
    control.arm(s.stop)  # the time budget, if any, counts from here
    stopped: Stop | None
    try:
        for line in recover(ledger):  # 2. adopt what a crash left unrecorded
            live.note(line)
        if s.executor is not None:  # 3-5 on the cluster: one run per GPU at a time
            wait = s.sleep or s.stop.wait
            call = ExecutorCall(ledger, configs, s.protocol, live, s.stop, wait, control)
            stopped = s.executor.run(remaining(ledger.manifest), call)
        else:  # 3-5 here, one at a time
            stopped = _run_here(ledger, configs, s, live, control)
    except KeyboardInterrupt:
        stopped = INTERRUPTED
    finally:
        control.disarm()
    if stopped is None or stopped == INTERRUPTED:  # the time budget may be why
        stopped = control.out_of_time() or stopped
    with interrupts_held():  # 6. status and summary, whole even if Ctrl-C comes again
        return _close(ledger, stopped, s.protocol, live, began)


def _run_here(
    ledger: Ledger,
    configs: Mapping[str, ExperimentConfig],
    s: _Session,
    reporter: StudyReporter,
    control: RunControl,
) -> Stop | None:
    """The local executor: each missing run in planned order, one at a time, gaps between."""
    wait = s.sleep or s.stop.wait  # a stop cuts a pause short
    previous: ManifestEntry | None = None
    for entry in remaining(ledger.manifest):  # 3. what is missing, in planned order
        pause_s, reason = max(_gap(s.protocol, previous, entry), control.pause())
        stop = control.before(entry, pause_s)  # the time budget
        if stop is not None:
            return stop
        if pause_s > 0:  # the thermal gap, or the circuit breaker's pause before a probe
            reporter.waiting(pause_s, reason)
            wait(pause_s)
        if s.stop.is_set():
            return control.out_of_time() or INTERRUPTED
        entry = ledger.start(entry)  # 4. one experiment in its own process group
        reporter.run_started(entry.label, entry.index, entry.cycle)
        outcome = s.run_one(
            configs[entry.config_hash],
            study_dir=ledger.study_dir,
            index=entry.index,
            cycle=entry.cycle,
            limits=RunLimits.of(s.protocol),
            on_progress=functools.partial(reporter.progress, entry.index, entry.cycle),
            stop_event=s.stop,
        )
        previous = ledger.finish(entry, _explained(outcome, control))
        reporter.run_finished(previous)
        if outcome.status == "interrupted":
            return control.out_of_time() or INTERRUPTED
        stop = control.after(previous)  # 5. fail-fast, circuit breaker
        if stop is not None:
            return stop
    return None


def _explained(outcome: RunOutcome, control: RunControl) -> RunOutcome:
    """An interrupted run says whether the time budget stopped it."""
    if outcome.status != "interrupted" or control.out_of_time() is None:
        return outcome
    message = "interrupted: the study's time budget ran out; its process group was killed"
    return RunOutcome("interrupted", outcome.duration_s, message, log_path=outcome.log_path)


def _close(
    ledger: Ledger, stopped: Stop | None, protocol: StudyProtocol, live: LiveStatus, began: float
) -> StudyOutcome:
    """Record how the session ended, write ``study_result.json``, drop the live status."""
    if stopped is not None and stopped.status == "timed_out":
        ledger.interrupt_running("interrupted: the study's time budget ran out")
    ledger.interrupt_running()
    done = all(entry.status == "completed" for entry in ledger.manifest.entries)
    if done:
        ledger.set_status("completed")
    elif stopped is not None:
        live.note(f"stopping: {stopped.reason}")
        ledger.set_status(stopped.status, stopped.reason)
    else:
        ledger.set_status("failed")
    live.note("writing the study summary")
    result = build_study_result(
        ledger.manifest,
        protocol=protocol,
        wall_time_s=time.monotonic() - began,
        study_dir=ledger.study_dir,
    )
    atomic_write_text(ledger.study_dir / STUDY_RESULT_FILE, result.model_dump_json(indent=2) + "\n")
    live.close()
    return StudyOutcome(result.status, ledger.study_dir, ledger.manifest, result)


@contextlib.contextmanager
def _open_ledger(
    plan: StudyPlanLike, results_root: Path, resume_dir: Path | None
) -> Iterator[Ledger]:
    """The study folder, locked for this session, with its manifest and ``study.yaml``."""
    check_plan(plan)  # before any folder is created
    if resume_dir is not None:
        Manifest.load(resume_dir)  # a folder without a manifest is refused before it is locked
        study_dir = resume_dir
    else:
        at = datetime.now(timezone.utc)
        study_dir = create_unique_dir(results_root, run_dir_name(plan.name, at))
    with study_lock(study_dir):
        if resume_dir is not None:
            ledger = Ledger.resume(resume_dir, plan)
        else:
            ledger = Ledger.create(study_dir, plan)
        study_file = ledger.study_dir / STUDY_FILE
        if not study_file.exists():
            atomic_write_text(study_file, yaml.safe_dump(_resolved(plan), sort_keys=False))
        yield ledger


def _resolved(plan: StudyPlanLike) -> dict[str, Any]:
    if plan.resolved:
        return dict(plan.resolved)
    return {
        "name": plan.name,
        "experiments": [config.model_dump(mode="json") for config in plan.configs],
    }


def _protocol(plan: StudyPlanLike, on_gpu: bool) -> StudyProtocol:
    """The execution settings with the gap defaults applied: 60/300 s on a GPU, 0 on the CPU."""
    execution = plan.execution
    experiment_gap_s, cycle_gap_s = effective_gaps(
        execution.experiment_gap_s, execution.cycle_gap_s, on_gpu=on_gpu
    )
    return StudyProtocol(
        n_cycles=execution.n_cycles,
        experiment_order=execution.experiment_order,
        experiment_gap_s=experiment_gap_s,
        cycle_gap_s=cycle_gap_s,
        experiment_timeout_s=execution.experiment_timeout_s,
        max_consecutive_failures=execution.max_consecutive_failures,
        experiment_silence_timeout_s=execution.experiment_silence_timeout_s,
        fail_fast=execution.fail_fast,
        study_timeout_s=execution.study_timeout_s,
    )


def _gap(
    protocol: StudyProtocol, previous: ManifestEntry | None, entry: ManifestEntry
) -> tuple[float, str]:
    """The thermal gap before ``entry``; none before the first run of a session."""
    if previous is None:
        return 0.0, ""
    if previous.cycle != entry.cycle:
        return protocol.cycle_gap_s, "thermal gap between cycles"
    return protocol.experiment_gap_s, "thermal gap between experiments"
