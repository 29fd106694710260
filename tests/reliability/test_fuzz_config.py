"""Property tests of config loading and hashing: anything in, a config or one ConfigError out.

- Any text, bytes or YAML-shaped data in a config file gives an ExperimentConfig or a
  ConfigError (never another exception).
- Any dotted overrides give an ExperimentConfig or a ConfigError.
- A valid config survives dump and reload unchanged, and its hash depends neither on
  key order, nor on how it was written (YAML, JSON, overrides), nor on the process.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.config.loading import (
    UserConfig,
    load_experiment_config,
    load_user_config,
    validate_experiment,
)
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import ConfigError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NO_USER = UserConfig()

# Keys that exist, so that generated data often gets past the unknown-key check.
KEYS = [
    "task", "model", "dataset", "source", "n_prompts", "order", "max_output_tokens",
    "max_input_tokens", "random_seed", "engine", "fake", "batch_size", "transformers",
    "dtype", "sampling", "temperature", "measurement", "warmup", "baseline", "pue",
    "energy_sampler", "sampling_preset", "trust_remote_code", "n_warmup", "enabled",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["fake", "transformers", "vllm", "builtin", "synthetic", "auto", ""])
)
keys = st.sampled_from(KEYS) | st.text(min_size=1, max_size=12) | st.integers(-3, 3)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz-config")


def _load_file(path: Path) -> ExperimentConfig | None:
    try:
        return load_experiment_config(path, user=NO_USER)
    except ConfigError as err:
        assert err.message and "\n" not in err.message
        return None


@FUZZ
@given(data=documents)
def test_any_yaml_document_gives_a_config_or_a_config_error(data: Any, scratch: Path) -> None:
    path = scratch / "doc.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    config = _load_file(path)
    if config is not None:
        assert measurement_config_hash(config) == measurement_config_hash(
            ExperimentConfig.model_validate(config.model_dump(mode="json"))
        )


@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_gives_a_config_or_a_config_error(text: str, scratch: Path) -> None:
    path = scratch / "text.yaml"
    path.write_text(text, encoding="utf-8")
    _load_file(path)


@FUZZ
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".yaml", ".json"]))
def test_any_bytes_give_a_config_or_a_config_error(raw: bytes, suffix: str, scratch: Path) -> None:
    path = scratch / f"bytes{suffix}"
    path.write_bytes(raw)
    _load_file(path)


@FUZZ
@given(data=documents)
def test_any_user_config_gives_settings_or_a_config_error(data: Any, scratch: Path) -> None:
    path = scratch / "user.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    try:
        load_user_config(path)
    except ConfigError as err:
        assert err.message and "\n" not in err.message


dotted = st.lists(st.sampled_from(KEYS), min_size=1, max_size=4).map(".".join)


@FUZZ
@given(overrides=st.dictionaries(dotted | st.text(max_size=8), scalars, max_size=5))
def test_any_overrides_give_a_config_or_a_config_error(overrides: dict[str, Any]) -> None:
    try:
        load_experiment_config(None, overrides, user=NO_USER)
    except ConfigError as err:
        assert err.message and "\n" not in err.message


# ---------------------------------------------------------------------- valid configs

valid_configs = st.fixed_dictionaries(
    {
        "engine": st.just("fake"),
        "task": st.fixed_dictionaries(
            {
                "dataset": st.fixed_dictionaries(
                    {
                        "n_prompts": st.integers(1, 1_000_000),
                        "order": st.sampled_from(["interleaved", "grouped", "shuffled"]),
                    }
                ),
                "max_output_tokens": st.integers(1, 1_048_576),
                "random_seed": st.integers(0, 2**32 - 1),
            },
            optional={"trust_remote_code": st.booleans(), "chat_template": st.booleans()},
        ),
        "fake": st.fixed_dictionaries(
            {"batch_size": st.integers(1, 65_536)},
            optional={"token_latency_ms": st.floats(0, 60_000) | st.integers(0, 60_000)},
        ),
    },
    optional={
        "measurement": st.fixed_dictionaries(
            {},
            optional={
                "pue": st.floats(1.0, 10.0),
                "sample_interval_ms": st.integers(1, 60_000),
                "energy_sampler": st.sampled_from(["auto", "estimate", "none", "nvml"]),
            },
        )
    },
)


def _shuffled(data: Any, rng: random.Random) -> Any:
    """The same mapping with every level's keys in another order."""
    if isinstance(data, dict):
        items = list(data.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    return data


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@FUZZ
@given(data=valid_configs, seed=st.integers(0, 2**32))
def test_a_valid_config_has_one_hash_however_it_is_written(
    data: dict[str, Any], seed: int, scratch: Path
) -> None:
    reference = measurement_config_hash(validate_experiment(data))
    shuffled = _shuffled(data, random.Random(seed))
    assert measurement_config_hash(validate_experiment(shuffled)) == reference
    as_yaml = scratch / "valid.yaml"
    as_yaml.write_text(yaml.safe_dump(shuffled, sort_keys=False), encoding="utf-8")
    assert measurement_config_hash(load_experiment_config(as_yaml, user=NO_USER)) == reference
    as_json = scratch / "valid.json"
    as_json.write_text(json.dumps(data), encoding="utf-8")
    assert measurement_config_hash(load_experiment_config(as_json, user=NO_USER)) == reference
    from_flags = load_experiment_config(None, _flatten(shuffled), user=NO_USER)
    assert measurement_config_hash(from_flags) == reference
    config = validate_experiment(data)
    assert ExperimentConfig.model_validate(config.model_dump(mode="json")) == config


def test_hashes_are_the_same_in_another_process() -> None:
    """No dependence on the process (PYTHONHASHSEED, set iteration order, ...)."""
    rng = random.Random(7)
    configs = [
        {
            "engine": "fake",
            "fake": {"batch_size": rng.randint(1, 64)},
            "task": {"max_output_tokens": rng.randint(1, 512), "random_seed": i},
        }
        for i in range(20)
    ]
    here = [measurement_config_hash(validate_experiment(c)) for c in configs]
    script = (
        "import json, sys\n"
        "from llenergymeasure.config.hashing import measurement_config_hash\n"
        "from llenergymeasure.config.loading import validate_experiment\n"
        "print(json.dumps([measurement_config_hash(validate_experiment(c))"
        " for c in json.load(sys.stdin)]))\n"
    )
    for hash_seed in ("0", "12345"):
        proc = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(configs),
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            timeout=120,
            check=True,
        )
        assert json.loads(proc.stdout) == here
    assert len(set(here)) == len(here)
