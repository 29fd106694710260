"""When a study's runs happen: the order of every config × cycle (sequential, interleaved,
reversed, shuffled with a seed, or a Latin square) and the thermal gaps between them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, get_args

from llenergymeasure.config.errors import did_you_mean
from llenergymeasure.errors import ConfigError

__all__ = [
    "EXPERIMENT_ORDERS",
    "GPU_CYCLE_GAP_S",
    "GPU_EXPERIMENT_GAP_S",
    "ExperimentOrder",
    "PlannedRun",
    "effective_gaps",
    "order_runs",
]

ExperimentOrder = Literal["sequential", "interleave", "shuffle", "reverse", "latin_square"]
EXPERIMENT_ORDERS: tuple[str, ...] = get_args(ExperimentOrder)


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study: an index into :attr:`StudyPlan.configs` and a 1-based cycle."""

    config_index: int
    cycle: int


def order_runs(
    n_configs: int, n_cycles: int, order: ExperimentOrder, seed: int
) -> tuple[PlannedRun, ...]:
    """The runs of ``n_configs`` configs × ``n_cycles`` cycles in the given order.

    - ``sequential``: config 0 in every cycle, then config 1, ... (c0/1, c0/2, c1/1, ...).
    - ``interleave``: cycle 1 runs every config in order, then cycle 2, ...
    - ``reverse``: like interleave, but even cycles run the configs in reverse order
      (so position effects such as warming up average out across pairs of cycles).
    - ``shuffle``: like interleave, but cycle ``c`` runs the configs in the order
      ``random.Random(seed + c).shuffle`` gives; deterministic for a seed.
    - ``latin_square``: cycle ``k`` runs the configs rotated left by ``k - 1``; a cyclic
      Latin square, so each config takes each position once when ``n_cycles == n_configs``
      (it balances position, not which config precedes which).

    ``seed`` only matters for ``shuffle``.
    """
    if n_configs < 0 or n_cycles < 1:
        raise ConfigError(f"cannot order {n_configs} configs over {n_cycles} cycles")
    if order not in EXPERIMENT_ORDERS:
        suggestion = did_you_mean(str(order), list(EXPERIMENT_ORDERS))
        raise ConfigError(
            f"unknown experiment_order `{order}`{suggestion}",
            hint="choose one of " + ", ".join(EXPERIMENT_ORDERS),
        )
    cycles = range(1, n_cycles + 1)
    if order == "sequential":
        return tuple(PlannedRun(i, c) for i in range(n_configs) for c in cycles)
    runs: list[PlannedRun] = []
    for cycle in cycles:
        runs.extend(PlannedRun(i, cycle) for i in _cycle_order(n_configs, cycle, order, seed))
    return tuple(runs)


def _cycle_order(n_configs: int, cycle: int, order: str, seed: int) -> list[int]:
    indices = list(range(n_configs))
    if order == "reverse" and cycle % 2 == 0:
        indices.reverse()
    elif order == "shuffle":
        random.Random(seed + cycle).shuffle(indices)
    elif order == "latin_square" and n_configs:
        shift = (cycle - 1) % n_configs
        indices = indices[shift:] + indices[:shift]
    return indices


# Thermal gaps when the study file leaves them unset and a GPU is measured: long enough for
# a GPU to shed the heat of the previous run. A CPU-only host gets none.
GPU_EXPERIMENT_GAP_S = 60.0
GPU_CYCLE_GAP_S = 300.0


def effective_gaps(
    experiment_gap_s: float | None, cycle_gap_s: float | None, *, on_gpu: bool
) -> tuple[float, float]:
    """(between experiments, between cycles) in seconds, with the defaults applied."""
    return (
        experiment_gap_s if experiment_gap_s is not None else GPU_EXPERIMENT_GAP_S * on_gpu,
        cycle_gap_s if cycle_gap_s is not None else GPU_CYCLE_GAP_S * on_gpu,
    )
