"""Tiny fake-engine configs and a stand-in study plan for the study tests."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from llenergymeasure.config.execution import StudyExecution
from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.isolation import RunLimits, RunOutcome, run_isolated


class Phases(list[str]):
    """An ``on_progress`` that keeps the names of the phases a run went through, in order."""

    def __call__(self, event: RunEvent) -> None:
        if event.kind == "phase":
            self.append(event.text)


def tiny(**fake: Any) -> ExperimentConfig:
    """A fake-engine experiment that finishes in milliseconds: 2 prompts x 2 tokens."""
    return ExperimentConfig.model_validate(
        {
            "engine": "fake",
            "fake": {"token_latency_ms": 1, **fake},
            "task": {"dataset": {"n_prompts": 2}, "max_output_tokens": 2},
            "measurement": {
                "energy_sampler": "estimate",
                "warmup": {"enabled": False},
                "baseline": {"enabled": False},
            },
        }
    )


@dataclass(frozen=True)
class Run:
    config_index: int
    cycle: int


@dataclass(frozen=True)
class Plan:
    """A stand-in for the sweep expansion's plan: runs cycle by cycle, configs in order."""

    name: str
    design_hash: str
    configs: tuple[ExperimentConfig, ...]
    labels: tuple[str, ...]
    execution: StudyExecution
    resolved: Mapping[str, Any] = field(default_factory=dict)

    @property
    def config_hashes(self) -> tuple[str, ...]:
        return tuple(measurement_config_hash(c) for c in self.configs)

    def runs(self) -> tuple[Run, ...]:
        cycles = range(1, self.execution.n_cycles + 1)
        return tuple(Run(i, c) for c in cycles for i in range(len(self.configs)))


def isolated(
    study_dir: Path,
    index: int = 1,
    cycle: int = 1,
    *,
    config: ExperimentConfig | None = None,
    timeout_s: float = 60.0,
    **options: Any,
) -> RunOutcome:
    """:func:`run_isolated` of ``config`` (default :func:`tiny`), stopped after ``timeout_s``."""
    limits = RunLimits(timeout_s)
    return run_isolated(
        config or tiny(), study_dir=study_dir, index=index, cycle=cycle, limits=limits, **options
    )


def make_plan(
    configs: list[ExperimentConfig], *, design_hash: str = "d" * 16, **execution: Any
) -> Plan:
    return Plan(
        name="unit-study",
        design_hash=design_hash,
        configs=tuple(configs),
        labels=tuple(f"cfg{i + 1}" for i in range(len(configs))),
        execution=StudyExecution(
            **{"n_cycles": 1, "experiment_order": "interleave", "experiment_timeout_s": 60.0}
            | execution
        ),
    )


def gone(pid: int, within_s: float = 5.0) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its reaper counts as gone)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False
