"""How a study's runs are scheduled: the ``study_execution:`` block of a study file."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, StrictBool

from llenergymeasure.config.base import NumbersNotBooleans
from llenergymeasure.config.order import ExperimentOrder

__all__ = ["MAX_DURATION_S", "MAX_RUNS", "StudyExecution"]

# Turns a typo (cycles: 1000000) into an error: the manifest lists every run.
MAX_RUNS = 100_000
# The longest timeout or budget a study accepts: a year. Longer is a typo, and above
# threading.TIMEOUT_MAX a timer cannot wait at all.
MAX_DURATION_S = 365 * 86_400.0


def _duration_s(default: float | None, description: str) -> Any:
    """A timeout or a budget: more than 0, finite, at most ``MAX_DURATION_S``."""
    return Field(default, gt=0.0, le=MAX_DURATION_S, allow_inf_nan=False, description=description)


class StudyExecution(NumbersNotBooleans):
    """How a study's runs are scheduled (the ``study_execution:`` block).

    None for a gap means "the runner's default": 60 s between experiments and 300 s
    between cycles when a GPU is measured, 0 on a CPU-only host (the runner decides,
    since only it knows the host). None for ``shuffle_seed`` means a seed derived from
    the study design hash, so a study shuffles the same way every time it is run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_cycles: int = Field(3, ge=1, le=MAX_RUNS, description="times every experiment runs")
    experiment_order: ExperimentOrder = Field("shuffle", description="see order_runs")
    experiment_gap_s: float | None = Field(
        None, ge=0.0, allow_inf_nan=False, description="pause between experiments; None = runner"
    )
    cycle_gap_s: float | None = Field(
        None, ge=0.0, allow_inf_nan=False, description="pause between cycles; None = runner"
    )
    experiment_timeout_s: float = _duration_s(600.0, "a run still going after this long is stopped")
    max_consecutive_failures: int = Field(10, ge=1, description="circuit-breaker threshold")
    fail_fast: StrictBool = Field(False, description="stop the study after its first failed run")
    study_timeout_s: float | None = _duration_s(
        None,
        "wall-clock budget of one session: no run starts that cannot end in it, "
        "and a run still going when it ends is stopped; None = no budget",
    )
    experiment_silence_timeout_s: float | None = _duration_s(
        None,
        "stop a run that prints nothing and reports no progress for this long; None = no watchdog",
    )
    shuffle_seed: int | None = Field(None, description="None = derived from the design hash")
    executor: Literal["local", "ray"] = Field(
        "local", description="local: one run at a time here; ray: one run per GPU of a Ray cluster"
    )
    address: str | None = Field(
        None,
        min_length=1,
        description="ray: the cluster to join (`auto`, `ray://head:10001`); None = "
        "$RAY_ADDRESS, else a Ray started on this machine",
    )
    max_retries: int = Field(
        1, ge=0, le=100, description="ray: reruns of a run whose Ray worker or node was lost"
    )
    gpus_per_run: int | None = Field(
        None,
        ge=0,
        le=64,
        description="ray: GPUs each run asks for; None = the engine's parallel size (1 by "
        "default), 0 when the cluster has no GPU; 0 = one CPU slot",
    )
