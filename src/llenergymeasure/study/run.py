"""The study spine: every planned run, each in its own subprocess, ledger kept (DESIGN §6)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
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
from llenergymeasure.study.isolation import RunOutcome, run_isolated
from llenergymeasure.study.manifest import Ledger, Manifest, ManifestEntry, remaining
from llenergymeasure.study.models import (
    StudyPlanLike,
    StudyProtocol,
    StudyResult,
    StudyStatus,
    check_plan,
)
from llenergymeasure.study.ray_executor import RayExecutor, ray_executor_for
from llenergymeasure.study.reporter import NullStudyReporter, StudyReporter
from llenergymeasure.study.stats import STUDY_FILE, STUDY_RESULT_FILE, build_study_result
from llenergymeasure.system.gpus import list_gpus

__all__ = ["BREAKER_PAUSE_S", "RunOne", "StudyOutcome", "run_study"]

BREAKER_PAUSE_S = 60.0


class RunOne(Protocol):
    """Runs one experiment and says how it ended (:func:`run_isolated` or a stand-in)."""

    def __call__(
        self,
        config: ExperimentConfig,
        *,
        study_dir: Path,
        index: int,
        cycle: int,
        timeout_s: float,
        on_progress: Callable[[str], None] | None = None,
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
        """DESIGN §6: 0 all completed, 130 interrupted, 1 otherwise."""
        if self.status == "completed":
            return 0
        return 130 if self.status == "interrupted" else 1


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
    recorded and the study goes on; ``max_consecutive_failures``
    in a row pause the study, and a failing probe run after the pause aborts it. Ctrl-C
    or ``stop_event`` kills the running child and returns status ``interrupted``.
    Raises StudyError when ``resume_dir`` was started from another design.

    ``study_execution.executor`` says where the runs go: ``local`` runs them here one at
    a time through ``run_one``; ``ray`` (or an ``executor`` given) runs them as Ray tasks,
    one per GPU, into the same study folder and manifest.
    """
    if isinstance(plan, str | Path):
        plan = load_study(Path(plan))
    executor = executor or ray_executor_for(plan.execution)
    # Joining the cluster comes first: without Ray, no study folder is made.
    with executor if executor is not None else contextlib.nullcontext():
        return _run(
            plan,
            results_root=results_root,
            resume_dir=resume_dir,
            reporter=reporter or NullStudyReporter(),
            run_one=run_one,
            sleep=sleep,
            stop_event=stop_event,
            on_gpu=on_gpu,
            executor=executor,
        )


def _run(
    plan: StudyPlanLike,
    *,
    results_root: Path,
    resume_dir: Path | None,
    reporter: StudyReporter,
    run_one: RunOne,
    sleep: Callable[[float], object] | None,
    stop_event: Event | None,
    on_gpu: bool | None,
    executor: RayExecutor | None,
) -> StudyOutcome:
    if executor is not None:  # every run must fit the cluster, before any folder is made
        runs_use_gpus = executor.prepare(plan.configs)
        on_gpu = runs_use_gpus if on_gpu is None else on_gpu
    elif on_gpu is None:  # only the default thermal gaps depend on it
        on_gpu = bool(list_gpus()[0])
    stop = stop_event or Event()
    wait = sleep or stop.wait  # a stop cuts a pause short
    began = time.monotonic()
    protocol = _protocol(plan, on_gpu)
    ledger = _open_ledger(plan, results_root, resume_dir)  # 1. folder, study.yaml, manifest
    configs = dict(zip(plan.config_hashes, plan.configs, strict=True))
    breaker = _CircuitBreaker(plan.execution.max_consecutive_failures)
    status: StudyStatus | None = None
    try:
        if executor is not None:  # 2-5 on the cluster: one run per GPU at a time
            status = executor.run(
                ledger,
                remaining(ledger.manifest),
                configs,
                protocol,
                reporter=reporter,
                stop=stop,
                wait=wait,
                breaker=breaker,
            )
        else:
            status = _run_here(ledger, configs, protocol, reporter, run_one, stop, wait, breaker)
    except KeyboardInterrupt:
        ledger.interrupt_running()
        status = "interrupted"
    ledger.set_status(status or _final_status(ledger.manifest))  # 6. status and summary
    result = build_study_result(
        ledger.manifest,
        protocol=protocol,
        wall_time_s=time.monotonic() - began,
        study_dir=ledger.study_dir,
    )
    atomic_write_text(ledger.study_dir / STUDY_RESULT_FILE, result.model_dump_json(indent=2) + "\n")
    return StudyOutcome(result.status, ledger.study_dir, ledger.manifest, result)


def _run_here(
    ledger: Ledger,
    configs: Mapping[str, ExperimentConfig],
    protocol: StudyProtocol,
    reporter: StudyReporter,
    run_one: RunOne,
    stop: Event,
    wait: Callable[[float], object],
    breaker: _CircuitBreaker,
) -> StudyStatus | None:
    """The local executor: each missing run in planned order, one at a time, gaps between."""
    previous: ManifestEntry | None = None
    for entry in remaining(ledger.manifest):  # 2. what is missing, in planned order
        pause_s, reason = max(_gap(protocol, previous, entry), breaker.pause())
        if pause_s > 0:  # 3. thermal gap, or the circuit breaker's pause before a probe
            reporter.waiting(pause_s, reason)
            wait(pause_s)
        if stop.is_set():
            return "interrupted"
        entry = ledger.start(entry)  # 4. one experiment in its own process group
        reporter.run_started(entry.label, entry.index, entry.cycle)
        outcome = run_one(
            configs[entry.config_hash],
            study_dir=ledger.study_dir,
            index=entry.index,
            cycle=entry.cycle,
            timeout_s=protocol.experiment_timeout_s,
            on_progress=reporter.progress,
            stop_event=stop,
        )
        previous = ledger.finish(entry, outcome)
        reporter.run_finished(previous)
        if outcome.status == "interrupted":
            return "interrupted"
        if breaker.record(outcome.status == "completed"):  # 5. the probe failed too
            return "circuit_breaker"
    return None


def _open_ledger(plan: StudyPlanLike, results_root: Path, resume_dir: Path | None) -> Ledger:
    check_plan(plan)  # before any folder is created
    if resume_dir is not None:
        ledger = Ledger.resume(resume_dir, plan)
    else:
        at = datetime.now(timezone.utc)
        ledger = Ledger.create(create_unique_dir(results_root, run_dir_name(plan.name, at)), plan)
    study_file = ledger.study_dir / STUDY_FILE
    if not study_file.exists():
        atomic_write_text(study_file, yaml.safe_dump(_resolved(plan), sort_keys=False))
    return ledger


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


def _final_status(manifest: Manifest) -> StudyStatus:
    done = all(entry.status == "completed" for entry in manifest.entries)
    return "completed" if done else "failed"


class _CircuitBreaker:
    """After ``limit`` failures in a row: pause, then probe with the next run; abort if it fails."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_a_row = 0

    def pause(self) -> tuple[float, str]:
        """The pause owed before the next run (a probe once tripped)."""
        if self._in_a_row < self._limit:
            return 0.0, ""
        return BREAKER_PAUSE_S, (
            f"circuit breaker: {self._in_a_row} failures in a row; pausing before a probe run"
        )

    def record(self, completed: bool) -> bool:
        """Count one outcome; True when the probe run failed too (abort the study)."""
        self._in_a_row = 0 if completed else self._in_a_row + 1
        return self._in_a_row > self._limit
