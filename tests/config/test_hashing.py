"""measurement_config_hash: the identity of a resolved config (folder names, resume)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config.hashing import canonical_json, measurement_config_hash
from llenergymeasure.config.loading import UserConfig, load_experiment_config
from llenergymeasure.config.models import ExperimentConfig

# The hash of ExperimentConfig(). It names every result folder and is the identity
# resume uses: if this value changes, every result folder name and every resume identity
# changes with it, so a change to the config schema or its defaults must be deliberate
# (update this value in the same change, and say why in its commit message).
GOLDEN_DEFAULT_HASH = "de659148c8292168"


def test_hash_is_16_lowercase_hex() -> None:
    digest = measurement_config_hash(ExperimentConfig())
    assert re.fullmatch(r"[0-9a-f]{16}", digest)


def test_golden_hash_of_the_default_config() -> None:
    assert measurement_config_hash(ExperimentConfig()) == GOLDEN_DEFAULT_HASH


def test_canonical_json_has_sorted_keys_and_no_whitespace() -> None:
    text = canonical_json(ExperimentConfig())
    assert " " not in text
    assert "\n" not in text
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert list(data["task"]) == sorted(data["task"])


FIELDS: dict[str, Any] = {
    "engine": "transformers",
    "task": {
        "model": "smollm2-135m",
        "max_output_tokens": 64,
        "dataset": {"n_prompts": 20, "order": "grouped"},
        "random_seed": 3,
    },
    "transformers": {"batch_size": 4, "dtype": "bfloat16", "sampling": {"do_sample": False}},
    "measurement": {"pue": 1.2, "warmup": {"n_warmup": 2}},
}

YAML_SHUFFLED = """\
measurement:
  warmup:
    n_warmup: 2
  pue: 1.2
transformers:
  sampling:
    do_sample: false
  dtype: bfloat16
  batch_size: 4
task:
  random_seed: 3
  dataset:
    order: grouped
    n_prompts: 20
  max_output_tokens: 64
  model: smollm2-135m
engine: transformers
"""

DOTTED = {
    "task.dataset.order": "grouped",
    "measurement.pue": 1.2,
    "transformers.sampling.do_sample": False,
    "task.random_seed": 3,
    "transformers.dtype": "bfloat16",
    "task.max_output_tokens": 64,
    "measurement.warmup.n_warmup": 2,
    "transformers.batch_size": 4,
    "task.dataset.n_prompts": 20,
}


def _reversed_keys(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _reversed_keys(v) if isinstance(v, dict) else v for k, v in reversed(data.items())}


def test_same_config_written_differently_has_one_hash(tmp_path: Path) -> None:
    yaml_path = tmp_path / "exp.yaml"
    yaml_path.write_text(YAML_SHUFFLED, encoding="utf-8")
    json_path = tmp_path / "exp.json"
    json_path.write_text(json.dumps(_reversed_keys(FIELDS)), encoding="utf-8")
    user = UserConfig()
    hashes = {
        "kwargs": measurement_config_hash(ExperimentConfig(**FIELDS)),
        "reversed": measurement_config_hash(ExperimentConfig(**_reversed_keys(FIELDS))),
        "yaml": measurement_config_hash(load_experiment_config(yaml_path, user=user)),
        "json": measurement_config_hash(load_experiment_config(json_path, user=user)),
        "dotted": measurement_config_hash(load_experiment_config(None, DOTTED, user=user)),
    }
    assert len(set(hashes.values())) == 1, hashes
    assert hashes["kwargs"] != GOLDEN_DEFAULT_HASH


def test_spelling_out_a_default_does_not_change_the_hash() -> None:
    explicit = ExperimentConfig(
        engine="transformers",
        transformers={"batch_size": 1},
        task={"dataset": {"n_prompts": 100}, "random_seed": 42},
        measurement={"pue": 1, "warmup": {"thermal_floor_s": 60}},
    )
    assert measurement_config_hash(explicit) == GOLDEN_DEFAULT_HASH


@pytest.mark.parametrize(
    "change",
    [
        {"task": {"model": "other-model"}},
        {"task": {"dataset": {"n_prompts": 99}}},
        {"task": {"dataset": {"order": "shuffled"}}},
        {"task": {"dataset": {"source": "prompts.jsonl"}}},
        {"task": {"max_input_tokens": 255}},
        {"task": {"max_output_tokens": 255}},
        {"task": {"random_seed": 43}},
        {"engine": "vllm"},
        {"engine": "fake"},
        {"transformers": {"batch_size": 2}},
        {"transformers": {"dtype": "float16"}},
        {"transformers": {"sampling": {"temperature": 0.5}}},
        {"measurement": {"energy_sampler": "estimate"}},
        {"measurement": {"sample_interval_ms": 50}},
        {"measurement": {"warmup": {"n_warmup": 4}}},
        {"measurement": {"baseline": {"strategy": "fresh"}}},
        {"measurement": {"pue": 1.1}},
        {"sampling_preset": "standard"},
    ],
)
def test_any_field_change_changes_the_hash(change: dict[str, Any]) -> None:
    assert measurement_config_hash(ExperimentConfig(**change)) != GOLDEN_DEFAULT_HASH


def test_all_variations_have_distinct_hashes() -> None:
    configs = [
        ExperimentConfig(transformers={"batch_size": b}, task={"random_seed": s})
        for b in (1, 2, 4)
        for s in (0, 1, 2)
    ]
    assert len({measurement_config_hash(c) for c in configs}) == len(configs)


def test_hash_is_stable_across_processes() -> None:
    cfg = ExperimentConfig(**FIELDS)
    script = (
        "import json, sys\n"
        "from llenergymeasure.config.hashing import measurement_config_hash\n"
        "from llenergymeasure.config.models import ExperimentConfig\n"
        "fields = json.loads(sys.argv[1])\n"
        "print(measurement_config_hash(ExperimentConfig()))\n"
        "print(measurement_config_hash(ExperimentConfig(**fields)))\n"
    )
    # A different hash seed in the child: nothing may depend on set/dict hashing order.
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(FIELDS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    default_hash, fields_hash = out.stdout.split()
    assert default_hash == GOLDEN_DEFAULT_HASH
    assert fields_hash == measurement_config_hash(cfg)
