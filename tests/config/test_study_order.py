"""The order a study's runs take: order_runs and StudyPlan.runs()."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from llenergymeasure.config.order import EXPERIMENT_ORDERS, ExperimentOrder, PlannedRun, order_runs
from llenergymeasure.config.study import StudyExecution, expand_study
from llenergymeasure.errors import ConfigError

# 3 configs x 2 cycles, as (config_index, cycle) pairs written out by hand.
# shuffle with seed 7: random.Random(8) orders cycle 1 as [2, 1, 0],
# random.Random(9) orders cycle 2 as [0, 2, 1].
EXPECTED: dict[str, list[tuple[int, int]]] = {
    "sequential": [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)],
    "interleave": [(0, 1), (1, 1), (2, 1), (0, 2), (1, 2), (2, 2)],
    "reverse": [(0, 1), (1, 1), (2, 1), (2, 2), (1, 2), (0, 2)],
    "shuffle": [(2, 1), (1, 1), (0, 1), (0, 2), (2, 2), (1, 2)],
    "latin_square": [(0, 1), (1, 1), (2, 1), (1, 2), (2, 2), (0, 2)],
}


def test_every_order_has_a_written_expectation() -> None:
    assert set(EXPECTED) == set(EXPERIMENT_ORDERS)


@pytest.mark.parametrize(("order", "expected"), list(EXPECTED.items()))
def test_order_runs_three_configs_two_cycles(
    order: ExperimentOrder, expected: list[tuple[int, int]]
) -> None:
    runs = order_runs(3, 2, order, seed=7)
    assert [(r.config_index, r.cycle) for r in runs] == expected


@pytest.mark.parametrize("order", EXPERIMENT_ORDERS)
def test_every_pair_runs_exactly_once(order: ExperimentOrder) -> None:
    runs = order_runs(5, 4, order, seed=123)
    assert Counter(runs) == Counter(PlannedRun(i, c) for i in range(5) for c in range(1, 5))


def test_shuffle_is_deterministic_for_a_seed_and_varies_with_it() -> None:
    first = order_runs(8, 3, "shuffle", seed=1)
    assert order_runs(8, 3, "shuffle", seed=1) == first
    assert order_runs(8, 3, "shuffle", seed=2) != first


def test_shuffle_orders_each_cycle_differently() -> None:
    runs = order_runs(8, 2, "shuffle", seed=5)
    cycle_1 = [r.config_index for r in runs if r.cycle == 1]
    cycle_2 = [r.config_index for r in runs if r.cycle == 2]
    assert cycle_1 != cycle_2
    assert [r.cycle for r in runs] == [1] * 8 + [2] * 8


def test_latin_square_puts_each_config_in_each_position_once() -> None:
    n = 4
    runs = order_runs(n, n, "latin_square", seed=0)
    positions: dict[int, set[int]] = {i: set() for i in range(n)}
    for cycle in range(1, n + 1):
        in_cycle = [r.config_index for r in runs if r.cycle == cycle]
        for position, index in enumerate(in_cycle):
            positions[index].add(position)
    assert all(p == set(range(n)) for p in positions.values())


def test_no_configs_means_no_runs() -> None:
    assert order_runs(0, 3, "latin_square", seed=0) == ()


def test_unknown_order_is_a_config_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean `interleave`"):
        order_runs(2, 1, "interleaved", seed=0)  # type: ignore[arg-type]


def test_zero_cycles_is_rejected() -> None:
    with pytest.raises(ConfigError):
        order_runs(2, 0, "sequential", seed=0)


# ------------------------------------------------------------- StudyPlan.runs()


def _plan(execution: dict[str, object]) -> list[tuple[int, int]]:
    data = {
        "engine": "fake",
        "sweep": {"fake.batch_size": [1, 2, 3]},
        "study_execution": execution,
    }
    plan = expand_study(data, base_dir=Path(), name="order")
    return [(r.config_index, r.cycle) for r in plan.runs()]


def test_plan_runs_follow_the_execution_block() -> None:
    runs = _plan({"n_cycles": 2, "experiment_order": "reverse"})
    assert runs == EXPECTED["reverse"]


def test_plan_uses_an_explicit_shuffle_seed() -> None:
    runs = _plan({"n_cycles": 2, "experiment_order": "shuffle", "shuffle_seed": 7})
    assert runs == EXPECTED["shuffle"]


def test_plan_without_seed_shuffles_by_its_design_hash() -> None:
    plan = expand_study(
        {"engine": "fake", "sweep": {"fake.batch_size": list(range(1, 9))}},
        base_dir=Path(),
        name="seeded",
    )
    assert plan.execution.shuffle_seed is None
    assert plan.shuffle_seed == int(plan.design_hash, 16)
    assert plan.runs() == order_runs(8, 3, "shuffle", int(plan.design_hash, 16))
    assert plan.runs() == plan.runs()


def test_execution_defaults() -> None:
    execution = StudyExecution()
    assert execution.n_cycles == 3
    assert execution.experiment_order == "shuffle"
    assert execution.experiment_gap_s is None
    assert execution.cycle_gap_s is None
    assert execution.experiment_timeout_s == 600
    assert execution.max_consecutive_failures == 10
    assert execution.shuffle_seed is None
    assert execution.executor == "local"
