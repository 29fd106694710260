"""Study files expanded into plans: grids, groups, engines, skips, base:, hashes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.config.loading import UserConfig
from llenergymeasure.config.study import (
    MAX_BASE_DEPTH,
    SkippedConfig,
    StudyPlan,
    expand_study,
    load_study,
    study_design_hash,
)
from llenergymeasure.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NO_USER = UserConfig()


def expand(data: dict[str, Any], name: str = "study") -> StudyPlan:
    return expand_study(data, base_dir=Path(), name=name)


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------- worked examples


def test_example_study_expands_to_29_configs_and_87_runs() -> None:
    plan = load_study(EXAMPLES / "study.yaml", user=NO_USER)
    engines = [c.engine for c in plan.configs]
    assert len(plan.configs) == 29
    assert engines == ["transformers"] * 24 + ["vllm"] * 4 + ["transformers"]
    assert plan.skipped == ()
    assert len(plan.runs()) == 87
    assert plan.name == "batch-and-precision"
    assert plan.execution.n_cycles == 3
    assert plan.execution.experiment_order == "shuffle"
    assert plan.execution.experiment_gap_s == 30
    assert plan.execution.cycle_gap_s == 120
    assert plan.execution.experiment_timeout_s == 900
    assert plan.execution.max_consecutive_failures == 5
    # each engine keeps only its own section
    assert all(c.vllm is None for c in plan.configs if c.engine == "transformers")
    assert all(c.transformers is None for c in plan.configs if c.engine == "vllm")
    # the grid: out (2) x bs (3) x dtype (2) x decoding (2); first key varies slowest
    grid = plan.configs[:24]
    assert [c.task.max_output_tokens for c in grid] == [32] * 12 + [128] * 12
    assert {(c.batch_size, c.transformers.dtype) for c in grid if c.transformers} == {
        (bs, dt) for bs in (1, 4, 16) for dt in ("float32", "bfloat16")
    }
    sampled = [c for c in grid if c.transformers and c.transformers.sampling.do_sample]
    assert len(sampled) == 12
    assert all(c.transformers and c.transformers.sampling.temperature == 0.7 for c in sampled)
    vllm = plan.configs[24:28]
    assert [(c.task.max_output_tokens, c.batch_size) for c in vllm] == [
        (32, 8),
        (32, 64),
        (128, 8),
        (128, 64),
    ]
    explicit = plan.configs[28]
    assert explicit.transformers is not None
    assert (explicit.batch_size, explicit.transformers.dtype) == (32, "bfloat16")
    assert explicit.task.max_output_tokens == 64  # the shared value, not swept
    assert explicit.task.dataset.n_prompts == 40
    assert plan.labels[1] == "transformers out=32 bs=1 dtype=float32 temperature=0.7 do_sample=true"
    assert plan.labels[24] == "vllm out=32 seqs=8"
    assert plan.labels[28] == "transformers bs=32 dtype=bfloat16"
    assert len(set(plan.labels)) == 29


def test_example_parity_expands_to_one_config_per_engine() -> None:
    plan = load_study(EXAMPLES / "parity.yaml", user=NO_USER)
    assert [c.engine for c in plan.configs] == ["transformers", "vllm"]
    assert plan.labels == ("transformers", "vllm")
    transformers, vllm = plan.configs
    assert transformers.vllm is None
    assert transformers.transformers is not None
    assert transformers.transformers.batch_size == 8
    assert vllm.transformers is None
    assert vllm.vllm is not None
    assert vllm.vllm.engine.max_num_seqs == 8
    assert transformers.task == vllm.task
    assert plan.execution.experiment_order == "interleave"
    assert [(r.config_index, r.cycle) for r in plan.runs()] == [(0, 1), (1, 1), (0, 2), (1, 2)]


def test_resolved_study_expands_to_the_same_plan() -> None:
    plan = load_study(EXAMPLES / "study.yaml", user=NO_USER)
    again = expand_study(plan.resolved, base_dir=EXAMPLES, name="other")
    assert again.design_hash == plan.design_hash
    assert again.labels == plan.labels
    assert again.name == plan.name
    assert again.execution == plan.execution
    yaml.safe_dump(plan.resolved)  # plain data, writable as study.yaml


# ------------------------------------------------------------------ the grid


def test_axes_form_a_product_with_the_first_key_slowest() -> None:
    plan = expand(
        {
            "engine": "fake",
            "sweep": {"fake.batch_size": [1, 2], "task.max_output_tokens": [8, 16, 32]},
        }
    )
    assert [(c.batch_size, c.task.max_output_tokens) for c in plan.configs] == [
        (1, 8),
        (1, 16),
        (1, 32),
        (2, 8),
        (2, 16),
        (2, 32),
    ]
    assert plan.labels[0] == "fake bs=1 out=8"


def test_empty_sweep_is_the_shared_config_once() -> None:
    plan = expand({"engine": "fake", "task": {"max_output_tokens": 7}, "sweep": {}})
    assert len(plan.configs) == 1
    assert plan.configs[0].task.max_output_tokens == 7
    assert plan.labels == ("fake",)


def test_without_sweep_only_the_explicit_experiments_run() -> None:
    plan = expand(
        {
            "engine": "fake",
            "experiments": [{"fake": {"batch_size": 2}}, {"task.max_output_tokens": 9}],
        }
    )
    assert [(c.batch_size, c.task.max_output_tokens) for c in plan.configs] == [(2, 256), (1, 9)]
    assert plan.labels == ("fake bs=2", "fake out=9")


def test_explicit_experiments_merge_deeply_and_are_not_multiplied() -> None:
    plan = expand(
        {
            "engine": "fake",
            "task": {"max_output_tokens": 20, "dataset": {"n_prompts": 5}},
            "sweep": {"fake.batch_size": [1, 2]},
            "experiments": [{"task": {"dataset": {"n_prompts": 9}}}],
        }
    )
    assert len(plan.configs) == 3
    explicit = plan.configs[2]
    assert explicit.task.dataset.n_prompts == 9
    assert explicit.task.max_output_tokens == 20
    assert explicit.batch_size == 1


def test_group_alternatives_with_an_unchanged_member() -> None:
    plan = expand(
        {
            "engine": "transformers",
            "sweep": {
                "decoding": [
                    {},
                    {"transformers.sampling.do_sample": True, "transformers.sampling.top_k": 5},
                ]
            },
        }
    )
    plain, sampled = plan.configs
    assert plain.transformers is not None
    assert sampled.transformers is not None
    assert plain.transformers.sampling.do_sample is None
    assert (sampled.transformers.sampling.do_sample, sampled.transformers.sampling.top_k) == (
        True,
        5,
    )
    assert plan.labels == ("transformers", "transformers do_sample=true top_k=5")


def test_engine_scoped_group_applies_only_to_its_engine() -> None:
    plan = expand(
        {
            "engine": ["transformers", "fake"],
            "sweep": {
                "transformers.decoding": [{}, {"transformers.sampling.temperature": 0.5}],
                "fake.speed": [{"fake.token_latency_ms": 1.0}, {"fake.token_latency_ms": 2.0}],
            },
        }
    )
    assert [c.engine for c in plan.configs] == ["transformers"] * 2 + ["fake"] * 2
    assert plan.skipped == ()
    fakes = [c.fake.token_latency_ms for c in plan.configs if c.fake is not None]
    assert fakes == [1.0, 2.0]


def test_engine_list_gives_each_engine_its_grid_and_drops_other_sections() -> None:
    plan = expand(
        {
            "engine": ["transformers", "fake"],
            "transformers": {"dtype": "float32"},
            "fake": {"token_latency_ms": 3.0},
            "sweep": {
                "task.max_output_tokens": [4, 8],
                "transformers.batch_size": [1, 2],
                "fake.batch_size": [5],
            },
        }
    )
    shape = [(c.engine, c.batch_size, c.task.max_output_tokens) for c in plan.configs]
    assert shape == [
        ("transformers", 1, 4),
        ("transformers", 2, 4),
        ("transformers", 1, 8),
        ("transformers", 2, 8),
        ("fake", 5, 4),
        ("fake", 5, 8),
    ]
    assert all(c.fake is None for c in plan.configs if c.engine == "transformers")
    assert all(c.transformers is None for c in plan.configs if c.engine == "fake")
    assert all(c.fake.token_latency_ms == 3.0 for c in plan.configs if c.fake is not None)


def test_engine_list_may_be_written_in_the_sweep() -> None:
    in_sweep = expand({"sweep": {"engine": ["transformers", "fake"], "task.random_seed": [1]}})
    shared = expand({"engine": ["transformers", "fake"], "sweep": {"task.random_seed": [1]}})
    assert in_sweep.design_hash == shared.design_hash


def test_engine_given_twice_is_an_error() -> None:
    with pytest.raises(ConfigError, match="both"):
        expand({"engine": "fake", "sweep": {"engine": ["fake", "vllm"]}})


def test_unscoped_group_drops_keys_of_other_engines_and_reports_duplicates() -> None:
    plan = expand(
        {
            "engine": ["transformers", "fake"],
            "sweep": {"variant": [{}, {"transformers.sampling.top_k": 3}]},
        }
    )
    assert [c.engine for c in plan.configs] == ["transformers", "transformers", "fake"]
    assert plan.skipped == (SkippedConfig("fake", "duplicate of fake"),)


def test_explicit_experiment_without_engine_runs_on_every_shared_engine() -> None:
    plan = expand(
        {"engine": ["transformers", "fake"], "experiments": [{"task.max_output_tokens": 3}]}
    )
    assert [(c.engine, c.task.max_output_tokens) for c in plan.configs] == [
        ("transformers", 3),
        ("fake", 3),
    ]


# --------------------------------------------------------- skips and duplicates


def test_invalid_combination_is_skipped_with_its_reason() -> None:
    plan = expand(
        {
            "engine": "transformers",
            "sweep": {
                "transformers.load_in_4bit": [True],
                "transformers.load_in_8bit": [True, False],
            },
        }
    )
    assert len(plan.configs) == 1
    assert plan.configs[0].transformers is not None
    assert plan.configs[0].transformers.load_in_8bit is False
    (skip,) = plan.skipped
    assert skip.label == "transformers load_in_4bit=true load_in_8bit=true"
    assert "`load_in_4bit` and `load_in_8bit` cannot both be true" in skip.reason
    assert not skip.reason.startswith("invalid")


def test_a_study_with_no_valid_config_lists_the_reasons() -> None:
    data = {
        "engine": "transformers",
        "sweep": {"transformers.load_in_4bit": [True], "transformers.load_in_8bit": [True]},
    }
    with pytest.raises(ConfigError, match="no valid config") as info:
        expand(data)
    assert "cannot both be true" in str(info.value)
    assert "load_in_4bit=true load_in_8bit=true" in str(info.value)


def test_a_study_that_expands_to_nothing_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no valid config"):
        expand({"experiments": []})


def test_duplicates_keep_the_first_and_are_reported() -> None:
    plan = expand(
        {
            "engine": "fake",
            "task": {"max_output_tokens": 64},
            "sweep": {"task.max_output_tokens": [64, 32, 64], "fake.batch_size": [1]},
            "experiments": [{"fake": {"batch_size": 1}}],
        }
    )
    assert plan.labels == ("fake out=64 bs=1", "fake out=32 bs=1")
    assert plan.skipped == (
        SkippedConfig("fake out=64 bs=1", "duplicate of fake out=64 bs=1"),
        SkippedConfig("fake bs=1", "duplicate of fake out=64 bs=1"),
    )


def test_labels_stay_unique_when_short_names_collide() -> None:
    plan = expand(
        {
            "engine": "fake",
            "sweep": {
                "variant": [
                    {"measurement.warmup.enabled": False},
                    {"measurement.baseline.enabled": False},
                ]
            },
        }
    )
    assert plan.labels == ("fake enabled=false", "fake enabled=false #2")


def test_config_hashes_are_the_measurement_hashes() -> None:
    plan = expand({"engine": "fake", "sweep": {"fake.batch_size": [1, 2]}})
    assert plan.config_hashes == tuple(measurement_config_hash(c) for c in plan.configs)
    assert plan.design_hash == study_design_hash(plan.config_hashes)


# --------------------------------------------------------------- design hash

STUDY: dict[str, Any] = {
    "study_name": "hashing",
    "task": {"model": "m", "max_output_tokens": 16, "dataset": {"n_prompts": 4}},
    "engine": "fake",
    "fake": {"token_latency_ms": 1.0},
    "sweep": {
        "fake.batch_size": [1, 2],
        "pair": [{}, {"task.random_seed": 1, "measurement.pue": 1.5}],
    },
    "study_execution": {"n_cycles": 2},
}


def test_design_hash_is_16_hex() -> None:
    plan = expand(STUDY)
    assert len(plan.design_hash) == 16
    int(plan.design_hash, 16)


def test_design_hash_ignores_key_order_outside_the_sweep_axes() -> None:
    reordered: dict[str, Any] = {
        "study_execution": {"n_cycles": 2},
        "sweep": {
            "fake.batch_size": [1, 2],
            "pair": [{}, {"measurement.pue": 1.5, "task.random_seed": 1}],
        },
        "fake": {"token_latency_ms": 1.0},
        "engine": "fake",
        "task": {"dataset": {"n_prompts": 4}, "max_output_tokens": 16, "model": "m"},
        "study_name": "hashing",
    }
    assert expand(reordered).design_hash == expand(STUDY).design_hash


def test_design_hash_ignores_the_execution_block() -> None:
    changed = dict(STUDY)
    changed["study_execution"] = {
        "n_cycles": 9,
        "experiment_order": "sequential",
        "experiment_gap_s": 1,
        "cycle_gap_s": 2,
        "shuffle_seed": 3,
    }
    assert expand(changed).design_hash == expand(STUDY).design_hash
    assert expand({k: v for k, v in STUDY.items() if k != "study_execution"}).design_hash == (
        expand(STUDY).design_hash
    )


def test_design_hash_changes_with_the_sweep() -> None:
    changed = dict(STUDY)
    changed["sweep"] = {**STUDY["sweep"], "fake.batch_size": [1, 4]}
    assert expand(changed).design_hash != expand(STUDY).design_hash


def test_design_hash_changes_with_a_shared_field() -> None:
    changed = {**STUDY, "task": {**STUDY["task"], "max_output_tokens": 17}}
    assert expand(changed).design_hash != expand(STUDY).design_hash


# ------------------------------------------------------------------- base:


def test_base_is_inherited_and_inline_wins(tmp_path: Path) -> None:
    write(
        tmp_path / "common.yaml",
        {
            "study_name": "common",
            "task": {"model": "m", "max_output_tokens": 16, "dataset": {"n_prompts": 4}},
            "engine": "fake",
            "sweep": {"fake.batch_size": [1, 2]},
            "study_execution": {"n_cycles": 5, "experiment_order": "sequential"},
        },
    )
    (tmp_path / "sub").mkdir()
    path = write(
        tmp_path / "sub" / "child.yaml",
        {
            "base": "../common.yaml",
            "task": {"max_output_tokens": 8},
            "sweep": {"task.random_seed": [1, 2]},
            "study_execution": {"n_cycles": 2},
        },
    )
    plan = load_study(path, user=NO_USER)
    assert plan.name == "child"  # study_name is not inherited
    assert [(c.batch_size, c.task.random_seed) for c in plan.configs] == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
    ]
    assert all(c.task.max_output_tokens == 8 and c.task.model == "m" for c in plan.configs)
    assert all(c.task.dataset.n_prompts == 4 for c in plan.configs)
    assert plan.execution.n_cycles == 2
    assert plan.execution.experiment_order == "sequential"
    assert "base" not in plan.resolved


def test_base_chains_resolve_each_relative_to_its_file(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(tmp_path / "a" / "root.yaml", {"engine": "fake", "fake": {"batch_size": 3}})
    write(tmp_path / "b" / "mid.yaml", {"base": "../a/root.yaml", "task": {"random_seed": 5}})
    path = write(tmp_path / "leaf.yaml", {"base": "b/mid.yaml", "sweep": {}})
    (config,) = load_study(path, user=NO_USER).configs
    assert (config.batch_size, config.task.random_seed) == (3, 5)


def test_cyclic_base_chain_names_the_cycle(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", {"base": "b.yaml", "sweep": {}})
    write(tmp_path / "b.yaml", {"base": "a.yaml"})
    with pytest.raises(ConfigError, match="cyclic `base:`") as info:
        load_study(tmp_path / "a.yaml", user=NO_USER)
    message = str(info.value)
    assert "a.yaml" in message
    assert "b.yaml" in message
    assert message.index("a.yaml") < message.index("b.yaml") < message.rindex("a.yaml")


def test_a_file_that_is_its_own_base_is_a_cycle(tmp_path: Path) -> None:
    write(tmp_path / "self.yaml", {"base": "self.yaml", "sweep": {}})
    with pytest.raises(ConfigError, match="cyclic"):
        load_study(tmp_path / "self.yaml", user=NO_USER)
    with pytest.raises(ConfigError, match="cyclic"):
        expand_study({"base": "self.yaml"}, base_dir=tmp_path, name="x")


def test_base_chain_depth_is_limited(tmp_path: Path) -> None:
    depth = MAX_BASE_DEPTH + 1
    for i in range(depth):
        write(tmp_path / f"f{i}.yaml", {"base": f"f{i + 1}.yaml"})
    write(tmp_path / f"f{depth}.yaml", {"engine": "fake", "sweep": {}})
    with pytest.raises(ConfigError, match="deeper than 10"):
        load_study(tmp_path / "f0.yaml", user=NO_USER)
    # exactly MAX_BASE_DEPTH hops is fine
    assert len(load_study(tmp_path / "f1.yaml", user=NO_USER).configs) == 1


def test_missing_base_file_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", {"base": "nope.yaml", "sweep": {}})
    with pytest.raises(ConfigError, match="not found"):
        load_study(path, user=NO_USER)


# ------------------------------------------------- load_study: user and overrides


def test_user_defaults_sit_under_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.yaml",
        {"engine": "fake", "task": {"random_seed": 3}, "sweep": {}},
    )
    user = UserConfig(defaults={"task": {"random_seed": 9, "max_output_tokens": 11}})
    (config,) = load_study(path, user=user).configs
    assert (config.task.random_seed, config.task.max_output_tokens) == (3, 11)


def test_user_defaults_cannot_hold_study_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", {"engine": "fake", "sweep": {}})
    with pytest.raises(ConfigError, match="`sweep`"):
        load_study(path, user=UserConfig(defaults={"sweep": {}}))


def test_overrides_set_shared_fields_and_replace_a_swept_axis(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.yaml",
        {
            "engine": "fake",
            "sweep": {"task.max_output_tokens": [8, 16], "fake.batch_size": [1, 2]},
            "study_execution": {"n_cycles": 4, "experiment_order": "sequential"},
        },
    )
    overrides = {
        "task.max_output_tokens": 5,
        "task.random_seed": 2,
        "study_execution.n_cycles": 1,
        "study_name": "renamed",
    }
    plan = load_study(path, overrides, user=NO_USER)
    assert [(c.task.max_output_tokens, c.batch_size) for c in plan.configs] == [(5, 1), (5, 2)]
    assert all(c.task.random_seed == 2 for c in plan.configs)
    assert plan.execution.n_cycles == 1
    assert plan.execution.experiment_order == "sequential"
    assert plan.name == "renamed"
    assert plan.resolved["sweep"] == {"fake.batch_size": [1, 2]}


def test_override_of_the_engine_narrows_a_multi_engine_study(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.yaml",
        {
            "engine": ["transformers", "fake"],
            "fake": {"batch_size": 2},
            "sweep": {"transformers.batch_size": [1, 4]},
        },
    )
    plan = load_study(path, {"engine": "fake"}, user=NO_USER)
    assert [(c.engine, c.batch_size) for c in plan.configs] == [("fake", 2)]


def test_overrides_cannot_change_the_sweep(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", {"engine": "fake", "sweep": {}})
    with pytest.raises(ConfigError, match="cannot change `sweep`"):
        load_study(path, {"sweep.fake.batch_size": [1]}, user=NO_USER)


def test_study_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = write(tmp_path / "my-study.yaml", {"engine": "fake", "sweep": {}})
    assert load_study(path, user=NO_USER).name == "my-study"


def test_a_file_without_sweep_or_experiments_is_not_a_study(tmp_path: Path) -> None:
    path = write(tmp_path / "one.yaml", {"engine": "fake"})
    with pytest.raises(ConfigError, match="not a study"):
        load_study(path, user=NO_USER)


# ------------------------------------------------------------- bad study files


def test_unknown_study_execution_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match=r"`n_cycle` \(did you mean `n_cycles`\?\)"):
        expand({"sweep": {}, "study_execution": {"n_cycle": 2}})


def test_bad_study_execution_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="n_cycles"):
        expand({"sweep": {}, "study_execution": {"n_cycles": 0}})
    with pytest.raises(ConfigError, match="experiment_order"):
        expand({"sweep": {}, "study_execution": {"experiment_order": "random"}})


def test_unknown_top_level_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match=r"`study_executon` \(did you mean `study_execution`\?\)"):
        expand({"sweep": {}, "study_executon": {}})


def test_unknown_sweep_section_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match=r"did you mean `transformers`"):
        expand({"sweep": {"transfomers.batch_size": [1, 2]}})


def test_unknown_engine_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match=r"did you mean `vllm`"):
        expand({"engine": ["transformers", "vlm"], "sweep": {}})


@pytest.mark.parametrize(
    ("sweep", "match"),
    [
        ({"fake.batch_size": 4}, "non-empty list"),
        ({"fake.batch_size": []}, "non-empty list"),
        ({"g": [{}, 3]}, "mixes mappings"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_malformed_sweeps_are_config_errors(sweep: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        expand({"engine": "fake", "sweep": sweep})


def test_experiments_must_be_a_list_of_mappings() -> None:
    with pytest.raises(ConfigError, match="list of mappings"):
        expand({"engine": "fake", "experiments": {"fake": {}}})


def test_study_name_must_not_be_a_path() -> None:
    with pytest.raises(ConfigError, match="path separators"):
        expand({"study_name": "../escape", "sweep": {}})


# ---------------------------------------------------------------- performance


def test_a_10000_config_grid_expands_quickly() -> None:
    data = {
        "engine": "fake",
        "sweep": {
            "fake.batch_size": list(range(1, 11)),
            "task.max_output_tokens": list(range(1, 11)),
            "task.dataset.n_prompts": list(range(1, 11)),
            "task.random_seed": list(range(10)),
        },
    }
    start = time.perf_counter()
    plan = expand(data)
    elapsed = time.perf_counter() - start
    print(f"\n10,000-config expansion: {elapsed:.2f} s")
    assert len(plan.configs) == 10_000
    assert len(set(plan.config_hashes)) == 10_000
    assert plan.labels[0] == "fake bs=1 out=1 n_prompts=1 random_seed=0"
    assert elapsed < 15
