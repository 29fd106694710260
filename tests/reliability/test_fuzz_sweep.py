"""Property tests of sweep expansion and run order.

- The number of configs is the product of the axes' distinct values times the group's
  distinct alternatives; repeated values are skipped as duplicates, each with a reason.
- No two configs share a hash; expanding again gives the same configs in the same order.
- For every order and seed, the runs are each (config, cycle) exactly once, and the same
  seed gives the same order.
- Any YAML-shaped study gives a plan or one ConfigError, never another exception.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llenergymeasure.config.order import EXPERIMENT_ORDERS, order_runs
from llenergymeasure.config.study import expand_study
from llenergymeasure.errors import ConfigError

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHARED: dict[str, Any] = {
    "engine": "fake",
    "task": {"dataset": {"n_prompts": 2}, "max_output_tokens": 2},
}
# Axes whose every value is valid, so that the count is the product of distinct values.
AXES = {
    "fake.batch_size": st.integers(1, 64),
    "task.random_seed": st.integers(0, 10_000),
    "task.dataset.n_prompts": st.integers(1, 1000),
    "fake.token_latency_ms": st.integers(0, 100),
}
axes = st.dictionaries(
    st.sampled_from(sorted(AXES)), st.just(None), min_size=0, max_size=len(AXES)
).flatmap(
    lambda chosen: st.fixed_dictionaries(
        {key: st.lists(AXES[key], min_size=1, max_size=4) for key in chosen}
    )
)
# A group of alternatives over a key no axis uses.
groups = st.lists(st.integers(1, 512), min_size=1, max_size=4)


@FUZZ
@given(sweep_axes=axes, group=groups | st.none(), n_cycles=st.integers(1, 4))
def test_expansion_count_is_the_product_of_distinct_choices(
    sweep_axes: dict[str, list[int]],
    group: list[int] | None,
    n_cycles: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base_dir = tmp_path_factory.getbasetemp()
    sweep: dict[str, Any] = dict(sweep_axes)
    if group is not None:
        sweep["outputs"] = [{"task.max_output_tokens": n} for n in group]
    study = {**SHARED, "sweep": sweep, "study_execution": {"n_cycles": n_cycles}}
    plan = expand_study(study, base_dir=base_dir, name="fuzz")

    distinct = math.prod(len(set(values)) for values in sweep_axes.values())
    distinct *= len(set(group)) if group is not None else 1
    total = math.prod(len(values) for values in sweep_axes.values())
    total *= len(group) if group is not None else 1
    assert len(plan.configs) == distinct
    assert len(set(plan.config_hashes)) == len(plan.configs)  # no duplicates
    assert len(plan.skipped) == total - distinct  # each repeat listed, none dropped silently
    assert all(s.reason.startswith("duplicate of ") for s in plan.skipped)

    again = expand_study(study, base_dir=base_dir, name="fuzz")
    assert again.config_hashes == plan.config_hashes  # stable order
    assert again.design_hash == plan.design_hash
    runs = [(r.config_index, r.cycle) for r in plan.runs()]
    assert sorted(runs) == [(i, c) for i in range(distinct) for c in range(1, n_cycles + 1)]


@FUZZ
@given(
    n_configs=st.integers(0, 30),
    n_cycles=st.integers(1, 6),
    order=st.sampled_from(EXPERIMENT_ORDERS),
    seed=st.integers(0, 2**64),
)
def test_every_order_runs_each_config_and_cycle_once_and_is_stable_for_a_seed(
    n_configs: int, n_cycles: int, order: Any, seed: int
) -> None:
    runs = order_runs(n_configs, n_cycles, order, seed)
    pairs = [(r.config_index, r.cycle) for r in runs]
    assert sorted(pairs) == [(i, c) for i in range(n_configs) for c in range(1, n_cycles + 1)]
    assert order_runs(n_configs, n_cycles, order, seed) == runs
    if order != "sequential":  # the other orders finish a cycle before starting the next
        assert [c for _, c in pairs] == sorted(c for _, c in pairs)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 70)
    | st.floats(allow_nan=True)
    | st.text(max_size=10)
    | st.sampled_from(["fake", "transformers", "interleave", "shuffle"])
)
keys = st.sampled_from(
    [
        "sweep", "experiments", "study_execution", "n_cycles", "experiment_order", "engine",
        "fake", "fake.batch_size", "task", "task.max_output_tokens", "batch_size",
        "study_name", "decoding", "fake.token_latency_ms", "base",
    ]
) | st.text(min_size=1, max_size=8) | st.integers(-3, 3) | st.booleans()  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.dictionaries(keys, documents, max_size=5))
def test_any_study_mapping_gives_a_plan_or_a_config_error(
    data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    base_dir = tmp_path_factory.getbasetemp()
    study = {"sweep": {}, **SHARED, **data}
    try:
        plan = expand_study(study, base_dir=base_dir, name="fuzz")
    except ConfigError as err:
        assert err.message and "\n" not in err.message
        return
    assert plan.configs and len(set(plan.config_hashes)) == len(plan.configs)
