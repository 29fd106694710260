"""Property tests of resume: whatever state a study folder was left in, ``--resume`` runs
exactly what is missing.

A study is planned, its manifest is left with arbitrary entry states (as a killed or
interrupted study leaves it), then it is reopened with the same design and perhaps
other cycles or another order. ``remaining`` must then never offer a completed
(config, cycle), never lose one that is not completed, offer none twice, and follow
the new plan's order.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llenergymeasure.config.order import EXPERIMENT_ORDERS
from llenergymeasure.config.study import StudyPlan, expand_study
from llenergymeasure.study.manifest import Ledger, Manifest, remaining

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STATUSES = ["pending", "running", "completed", "failed", "crashed", "timed_out", "interrupted"]


def _plan(n_configs: int, n_cycles: int, order: str, seed: int) -> StudyPlan:
    study: dict[str, Any] = {
        "engine": "fake",
        "task": {"dataset": {"n_prompts": 2}, "max_output_tokens": 2},
        "sweep": {"fake.batch_size": list(range(1, n_configs + 1))},
        "study_execution": {
            "n_cycles": n_cycles,
            "experiment_order": order,
            "shuffle_seed": seed,
        },
    }
    return expand_study(study, base_dir=Path(), name="resume-fuzz")


@FUZZ
@given(
    n_configs=st.integers(1, 6),
    old_cycles=st.integers(1, 4),
    new_cycles=st.integers(1, 5),
    old_order=st.sampled_from(EXPERIMENT_ORDERS),
    new_order=st.sampled_from(EXPERIMENT_ORDERS),
    seed=st.integers(0, 2**32),
    states=st.lists(st.sampled_from(STATUSES), min_size=24, max_size=24),
)
def test_remaining_never_reruns_a_completed_run_and_never_loses_a_pending_one(
    n_configs: int,
    old_cycles: int,
    new_cycles: int,
    old_order: str,
    new_order: str,
    seed: int,
    states: list[str],
) -> None:
    old_plan = _plan(n_configs, old_cycles, old_order, seed)
    new_plan = _plan(n_configs, new_cycles, new_order, seed + 1)
    assert new_plan.design_hash == old_plan.design_hash  # cycles and order are not the design
    with tempfile.TemporaryDirectory() as folder:
        study_dir = Path(folder)
        ledger = Ledger.create(study_dir, old_plan)
        left = tuple(
            entry.model_copy(
                update={"status": states[i], "n_attempts": int(states[i] != "pending")}
            )
            for i, entry in enumerate(ledger.manifest.entries)
        )
        ledger.manifest.model_copy(update={"entries": left}).save(study_dir / "manifest.json")

        resumed = Ledger.resume(study_dir, new_plan)
        todo = remaining(resumed.manifest)
        reloaded = Manifest.load(study_dir)

    completed = {entry.key for entry in left if entry.status == "completed"}
    old_keys = {entry.key for entry in left}
    hashes = new_plan.config_hashes
    planned = [(hashes[run.config_index], run.cycle) for run in new_plan.runs()]
    todo_keys = [entry.key for entry in todo]

    assert not completed & set(todo_keys)  # never a completed run again
    assert len(todo_keys) == len(set(todo_keys))  # never one run twice
    expected = (set(planned) | old_keys) - completed
    assert set(todo_keys) == expected  # never a pending run lost (nor a recorded one)
    in_plan = [key for key in todo_keys if key in set(planned)]
    assert in_plan == [key for key in planned if key not in completed]  # the new order
    assert todo_keys[: len(in_plan)] == in_plan  # runs the plan dropped come last
    assert reloaded.entries == resumed.manifest.entries  # what is on disk is what runs
