"""What a study runs (:class:`StudyPlanLike`) and what it produced (:class:`StudyResult`).

``StudyPlanLike`` is the hand-over from the sweep expansion (``config.study.StudyPlan``
fits it): unique configs, their labels and hashes, the runs in execution order, and the
execution settings (DESIGN.md §3.2). ``StudyResult`` is written as ``study_result.json``
next to the manifest (DESIGN.md §5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from llenergymeasure.config.execution import StudyExecution
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import StudyError
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.study.parity import StudyParity

__all__ = [
    "RESULT_SCHEMA_VERSION",
    "Aggregate",
    "ConfigAggregate",
    "HeadlineMetrics",
    "PlannedRunLike",
    "StudyPlanLike",
    "StudyProtocol",
    "StudyResult",
    "StudyStatus",
    "StudySummary",
    "check_plan",
]

RESULT_SCHEMA_VERSION = "1"

StudyStatus = Literal[
    "running", "completed", "failed", "interrupted", "circuit_breaker", "fail_fast", "timed_out"
]


class PlannedRunLike(Protocol):
    """One planned run: a 0-based index into the plan's configs and a 1-based cycle."""

    @property
    def config_index(self) -> int: ...

    @property
    def cycle(self) -> int: ...


class StudyPlanLike(Protocol):
    """What ``run_study`` needs of an expanded study (``config.study.StudyPlan`` fits).

    ``configs``, ``labels`` and ``config_hashes`` are parallel, in design order;
    ``runs()`` lists the runs in execution order; ``resolved`` is written as ``study.yaml``.
    """

    @property
    def name(self) -> str: ...

    @property
    def design_hash(self) -> str: ...

    @property
    def configs(self) -> Sequence[ExperimentConfig]: ...

    @property
    def labels(self) -> Sequence[str]: ...

    @property
    def config_hashes(self) -> Sequence[str]: ...

    @property
    def resolved(self) -> Mapping[str, Any]: ...

    @property
    def execution(self) -> StudyExecution: ...

    def runs(self) -> Sequence[PlannedRunLike]: ...


def check_plan(plan: StudyPlanLike) -> list[tuple[int, int]]:
    """The plan's runs as ``(config_index, cycle)``; StudyError when they do not fit together."""
    n = len(plan.configs)
    if not n == len(plan.labels) == len(plan.config_hashes):
        raise StudyError("a study plan needs one label and one config hash per config")
    if len(set(plan.config_hashes)) != n:
        raise StudyError("the study plan lists the same resolved config twice")
    runs = [(run.config_index, run.cycle) for run in plan.runs()]
    if any(not 0 <= index < n or cycle < 1 for index, cycle in runs):
        raise StudyError("the study plan has a run with an unknown config or a cycle below 1")
    if len(set(runs)) != len(runs):
        raise StudyError("the study plan lists the same (config, cycle) run twice")
    return runs


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeadlineMetrics(_Frozen):
    """The few figures of one experiment that the manifest and the live table show."""

    output_tokens_per_s: float
    j_per_output_token: float | None
    energy_j: float | None = Field(description="window energy; None when not measured")
    energy_method: str | None
    window_s: float
    j_per_request: float | None = Field(None, description="serving runs: window J / request")
    goodput_per_s: float | None = Field(None, description="serving runs: requests/s meeting SLO")

    @property
    def estimated(self) -> bool:
        """Whether the energy figures are an estimate: the run measured nothing."""
        return self.energy_method == "estimated"

    @classmethod
    def of(cls, result: ExperimentResult) -> HeadlineMetrics:
        energy = result.energy
        per_token, total = energy.j_per_output_token, energy.total_j
        method: str | None = energy.method
        if total is None and energy.estimated is not None:
            # nothing measured (a host with no counter): the estimate, labelled as one
            per_token, total = energy.estimated.j_per_output_token, energy.estimated.total_j
            method = energy.estimated.method
        serving = result.serving
        return cls(
            output_tokens_per_s=result.throughput.output_tokens_per_s,
            j_per_output_token=per_token,
            energy_j=total,
            energy_method=method,
            window_s=result.window.duration_s,
            j_per_request=serving.j_per_request if serving is not None else None,
            goodput_per_s=serving.goodput.goodput_per_s if serving is not None else None,
        )


class Aggregate(_Frozen):
    """One metric of one config across cycles; ``None`` where the data do not allow it."""

    n: int
    mean: float | None = Field(description="None with no values")
    std: float | None = Field(description="sample standard deviation; None below 2 values")
    ci95_half_width: float | None = Field(description="Student t, two-sided; None below 2")
    ci95_low: float | None
    ci95_high: float | None


class ConfigAggregate(_Frozen):
    index: int
    label: str
    config_hash: str
    n_completed: int
    j_per_output_token: Aggregate
    output_tokens_per_s: Aggregate
    j_per_request: Aggregate | None = Field(None, description="serving configs only")
    energy_method: str | None = Field(
        None,
        description="how its energy figures were got: the measured methods, or `estimated` "
        "when its runs measured nothing (estimates are never pooled with measurements)",
    )
    goodput_per_s: Aggregate | None = Field(None, description="serving configs with an SLO")


class StudyProtocol(_Frozen):
    """How the study was run (the gaps actually applied, after the CPU/GPU defaults)."""

    n_cycles: int
    experiment_order: str
    experiment_gap_s: float
    cycle_gap_s: float
    experiment_timeout_s: float
    max_consecutive_failures: int
    experiment_silence_timeout_s: float | None = None
    fail_fast: bool = False
    study_timeout_s: float | None = Field(None, description="the session's wall-clock budget")


class StudySummary(_Frozen):
    n_planned: int
    n_completed: int
    n_failed: int = Field(description="ran but did not complete: failed, crashed, timed out")
    n_interrupted: int
    n_skipped: int = Field(description="never started (interrupt or circuit breaker)")
    wall_time_s: float = Field(description="wall time of the session that wrote this file")
    run_time_s: float = Field(description="sum of the recorded durations of all runs")
    total_energy_j: float | None = Field(
        description="sum over completed runs that measured energy (estimates apart)"
    )
    n_energy_unknown: int = Field(description="completed runs without an energy figure")
    estimated_energy_j: float | None = Field(
        None, description="sum of the estimates of completed runs that measured nothing"
    )


class StudyResult(_Frozen):
    """``study_result.json``: protocol, outcome counts and per-config aggregates."""

    schema_version: str = RESULT_SCHEMA_VERSION
    name: str
    design_hash: str
    status: StudyStatus
    protocol: StudyProtocol
    files: tuple[str, ...] = Field(description="paths relative to study_dir")
    summary: StudySummary
    aggregates: tuple[ConfigAggregate, ...]
    parity: StudyParity | None = Field(
        None, description="engine parity, when the completed runs used more than one engine"
    )
