"""The dry-run duration estimate: gaps, earlier measured runs, fixed parts of new ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llenergymeasure.config.study import expand_study
from llenergymeasure.study.estimate import RUN_OVERHEAD_S, estimate_duration

STUDY = {
    "engine": "fake",
    "measurement": {"baseline": {"duration_s": 10}, "warmup": {"thermal_floor_s": 45}},
    "sweep": {"fake.batch_size": [1, 2]},
    "study_execution": {"n_cycles": 2, "experiment_order": "interleave"},
}


def test_gaps_follow_the_gpu_defaults_and_the_order(tmp_path: Path) -> None:
    plan = expand_study(STUDY, base_dir=tmp_path, name="s")
    cpu = estimate_duration(plan, on_gpu=False, results_root=tmp_path)
    assert (cpu.gaps_s, cpu.fixed_s, cpu.n_untimed_runs) == (0.0, 0.0, 4)
    gpu = estimate_duration(plan, on_gpu=True, results_root=tmp_path)
    # runs 1/c1 2/c1 | 1/c2 2/c2: two experiment gaps (60 s) and one cycle gap (300 s)
    assert gpu.gaps_s == pytest.approx(2 * 60 + 300)
    # every new run: a 10 s baseline and the 45 s thermal floor
    assert gpu.fixed_s == pytest.approx(4 * (10 + 45))


def test_configs_that_ran_before_are_timed_from_their_results(tmp_path: Path) -> None:
    plan = expand_study(STUDY, base_dir=tmp_path, name="s")
    folder = tmp_path / "old_20260101T000000Z" / f"001_c1_x-fake_{plan.config_hashes[0][:8]}"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"timings": {"total_s": 12.5}}))
    estimate = estimate_duration(plan, on_gpu=False, results_root=tmp_path)
    assert estimate.n_timed_runs == 2  # config 1 in both cycles
    assert estimate.timed_s == pytest.approx(2 * (12.5 + RUN_OVERHEAD_S))
    assert estimate.n_untimed_runs == 2
