"""The library entry point: `run_experiment` with the fake engine and the fake energy sampler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llenergymeasure import ConfigError, ExperimentResult, load_result, run_experiment
from llenergymeasure.testing.fake_sampler import FakeEnergySampler

SHORT_BASELINE = {"duration_s": 0.3, "strategy": "fresh"}


def fake_config(**sections: Any) -> dict[str, Any]:
    """A small fake-engine experiment: 4 prompts x 4 output tokens, one warm-up run.

    The fake sampler reads a whole "device", so a baseline is taken: a short one here.
    """
    config: dict[str, Any] = {
        "engine": "fake",
        "task": {"dataset": {"n_prompts": 4}, "max_output_tokens": 4},
        "measurement": {"warmup": {"n_warmup": 1}, "baseline": SHORT_BASELINE},
    }
    measurement = sections.pop("measurement", {})
    config.update(sections)
    config["measurement"] = {**config["measurement"], **measurement}
    return config


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder that also holds the cache, so any stray write shows up."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_run_from_a_dict_returns_a_result_and_writes_nothing(empty_cwd: Path) -> None:
    result = run_experiment(fake_config())
    assert isinstance(result, ExperimentResult)
    assert result.engine == "fake"
    assert result.tokens.n_prompts == 4
    assert result.tokens.n_completed == 4
    assert result.tokens.n_output_tokens == 16
    assert result.config.task.max_output_tokens == 4
    assert list(empty_cwd.iterdir()) == []


def test_output_dir_writes_one_run_folder(empty_cwd: Path) -> None:
    out = empty_cwd / "out"
    result = run_experiment(fake_config(), output_dir=out)
    [run_dir] = list(out.iterdir())
    [experiment] = list(run_dir.iterdir())
    assert experiment.name.startswith("001_c1_")
    assert experiment.name.endswith(result.measurement_config_hash[:8])
    assert load_result(experiment) == result
    assert sorted(p.name for p in empty_cwd.iterdir()) == ["out"]


def test_fake_sampler_energy_is_power_times_window(empty_cwd: Path) -> None:
    config = fake_config(fake={"token_latency_ms": 2})
    result = run_experiment(config, sampler=FakeEnergySampler({"cpu:0": 10.0}))
    energy = result.energy
    assert energy.sampler == "fake"
    assert energy.method == "counter"
    assert [(d.domain, d.method) for d in energy.domains] == [("cpu:0", "counter")]
    assert energy.total_j is not None
    expected_j = 10.0 * result.window.duration_s
    assert energy.total_j == pytest.approx(expected_j, rel=0.2)
    assert energy.j_per_output_token == energy.total_j / result.tokens.n_output_tokens
    assert result.power.mean_w == pytest.approx(10.0, rel=0.2)


def test_baseline_is_subtracted_and_flagged_when_it_dominates(empty_cwd: Path) -> None:
    config = fake_config(fake={"token_latency_ms": 5})
    result = run_experiment(config, sampler=FakeEnergySampler({"cpu:0": 10.0}))
    energy = result.energy
    assert energy.baseline is not None
    assert energy.baseline.power_w_by_domain["cpu:0"] == pytest.approx(10.0, rel=0.05)
    assert energy.baseline.strategy == "fresh"
    assert energy.total_j is not None and energy.static_j is not None
    assert energy.static_j == pytest.approx(energy.baseline.power_w * result.window.duration_s)
    assert energy.adjusted_j == pytest.approx(max(0.0, energy.total_j - energy.static_j))
    codes = {w.code for w in result.warnings}
    # idle power equal to the window's power, and a 0.3 s baseline: both are flagged
    assert {"high_baseline", "short_baseline"} <= codes


def test_process_attributed_estimate_takes_no_baseline(empty_cwd: Path) -> None:
    result = run_experiment(fake_config(measurement={"energy_sampler": "estimate"}))
    assert result.energy.baseline is None
    assert result.energy.baseline_note is not None
    assert "not applicable" in result.energy.baseline_note
    assert result.timings.baseline_s < 1.0


def test_fake_engine_latencies_follow_its_token_latency(empty_cwd: Path) -> None:
    config = fake_config(fake={"token_latency_ms": 5, "batch_size": 2})
    result = run_experiment(config, sampler=FakeEnergySampler({"cpu:0": 1.0}))
    latency = result.latency
    assert latency.ttft is not None
    assert latency.itl is not None
    # One 5 ms decode step before the first token; sleeps only ever run long.
    assert 4.0 <= latency.ttft.p50_ms <= 50.0
    assert 4.0 <= latency.itl.p50_ms <= 50.0
    assert latency.e2e.p50_ms >= latency.ttft.p50_ms
    # Four steps of at least 4 ms each.
    assert latency.e2e.p50_ms >= 16.0
    assert latency.e2e.n == latency.ttft.n == 4


def test_fixed_warmup_runs_the_configured_count(empty_cwd: Path) -> None:
    config = fake_config(measurement={"warmup": {"n_warmup": 3}})
    result = run_experiment(config, sampler=FakeEnergySampler({"cpu:0": 1.0}))
    assert result.warmup.n_runs == 3
    assert result.warmup.mode == "fixed"
    assert result.warmup.converged is None
    assert result.warmup.thermal_floor_s == 0.0  # no floor on the CPU


def test_convergence_warmup_stops_between_min_and_max(empty_cwd: Path) -> None:
    warmup = {"convergence": True, "min": 3, "max": 20, "window": 3, "cv_threshold": 1.0}
    config = fake_config(fake={"token_latency_ms": 2}, measurement={"warmup": warmup})
    result = run_experiment(config, sampler=FakeEnergySampler({"cpu:0": 1.0}))
    # Equal sleeps vary far less than their mean, so the loose threshold is met early.
    assert result.warmup.mode == "convergence"
    assert result.warmup.converged is True
    assert 3 <= result.warmup.n_runs <= 20
    assert result.warmup.final_cv is not None
    assert result.warmup.final_cv < 1.0


def test_convergence_warmup_that_never_converges_stops_at_max(empty_cwd: Path) -> None:
    warmup = {"convergence": True, "min": 3, "max": 6, "window": 3, "cv_threshold": 1e-12}
    config = fake_config(measurement={"warmup": warmup})
    result = run_experiment(config, sampler=FakeEnergySampler({"cpu:0": 1.0}))
    assert result.warmup.converged is False
    assert result.warmup.n_runs == 6
    assert result.warmup.final_cv is not None
    assert result.warmup.final_cv >= 1e-12


def test_unknown_keys_raise_a_config_error_listing_them(empty_cwd: Path) -> None:
    config = fake_config(taks={}, bogus=1)
    config["task"]["max_output_tokns"] = 4
    with pytest.raises(ConfigError) as info:
        run_experiment(config)
    message = info.value.message
    assert "`taks` (did you mean `task`?)" in message
    assert "`bogus`" in message
    assert "`task.max_output_tokns` (did you mean `max_output_tokens`?)" in message
    assert list(empty_cwd.iterdir()) == []


def test_run_study_from_a_file_path(empty_cwd: Path) -> None:
    from llenergymeasure import run_study

    study = empty_cwd / "study.yaml"
    study.write_text(
        "engine: fake\n"
        "task: {dataset: {n_prompts: 2}, max_output_tokens: 2}\n"
        "measurement: {warmup: {enabled: false}, energy_sampler: estimate}\n"
        "sweep: {fake.batch_size: [1, 2]}\n"
        "study_execution: {n_cycles: 1, experiment_order: sequential}\n",
        encoding="utf-8",
    )
    outcome = run_study(study, results_root=empty_cwd / "results")
    assert outcome.status == "completed"
    assert outcome.exit_code == 0
    assert [a.n_completed for a in outcome.result.aggregates] == [1, 1]
    assert (outcome.study_dir / "study_result.json").is_file()
