"""Reading config files, dotted overrides, the user config and precedence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config.loading import (
    MAX_CONFIG_BYTES,
    UserConfig,
    deep_merge,
    is_study,
    load_experiment_config,
    load_user_config,
    nest_dotted,
    read_config_file,
    validate_experiment,
)
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import ConfigError, LlemError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the real user's config out of every test."""
    empty = tmp_path / "empty-user-config.yaml"
    empty.write_text("{}\n", encoding="utf-8")
    monkeypatch.setenv("LLEM_USER_CONFIG", str(empty))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ file formats


def test_yaml_file_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path / "exp.yaml",
        "task:\n  model: my-model\n  max_output_tokens: 32\ntransformers:\n  batch_size: 2\n",
    )
    cfg = load_experiment_config(path)
    assert cfg.task.model == "my-model"
    assert cfg.task.max_output_tokens == 32
    assert cfg.transformers is not None
    assert cfg.transformers.batch_size == 2


def test_yml_extension_loads(tmp_path: Path) -> None:
    cfg = load_experiment_config(write(tmp_path / "exp.yml", "engine: fake\n"))
    assert cfg.engine == "fake"
    assert cfg.fake is not None


def test_json_file_loads(tmp_path: Path) -> None:
    data = {"task": {"dataset": {"n_prompts": 7}}, "engine": "vllm", "vllm": {"dtype": "float16"}}
    cfg = load_experiment_config(write(tmp_path / "exp.json", json.dumps(data)))
    assert cfg.task.dataset.n_prompts == 7
    assert cfg.engine == "vllm"
    assert cfg.vllm is not None
    assert cfg.vllm.dtype == "float16"


def test_yaml_and_json_of_the_same_data_are_equal(tmp_path: Path) -> None:
    yaml_cfg = load_experiment_config(
        write(tmp_path / "a.yaml", "task:\n  random_seed: 3\nmeasurement:\n  pue: 1.2\n")
    )
    json_cfg = load_experiment_config(
        write(tmp_path / "a.json", '{"measurement": {"pue": 1.2}, "task": {"random_seed": 3}}')
    )
    assert yaml_cfg == json_cfg
    assert yaml_cfg.task.random_seed == 3


def test_no_file_gives_the_defaults() -> None:
    assert load_experiment_config(user=UserConfig()) == ExperimentConfig()


# ------------------------------------------------------------- worked examples


def test_example_experiment_loads() -> None:
    cfg = load_experiment_config(EXAMPLES / "experiment.yaml", user=UserConfig())
    assert cfg.engine == "transformers"
    assert cfg.transformers is not None
    assert cfg.transformers.batch_size == 4
    assert cfg.transformers.dtype == "float32"
    assert cfg.transformers.sampling.do_sample is False
    assert cfg.task.dataset.n_prompts == 50
    assert cfg.task.dataset.order == "shuffled"
    assert cfg.task.random_seed == 7
    assert cfg.task.max_input_tokens == 512
    assert cfg.task.max_output_tokens == 128
    assert cfg.measurement.warmup.n_warmup == 3
    assert cfg.measurement.baseline.strategy == "fresh"
    assert cfg.measurement.baseline.duration_s == 10
    assert cfg.measurement.carbon_intensity_g_per_kwh == 250


@pytest.mark.parametrize("name", ["study.yaml", "parity.yaml"])
def test_study_examples_are_refused_as_experiments(name: str) -> None:
    path = EXAMPLES / name
    assert is_study(read_config_file(path))
    with pytest.raises(ConfigError, match="is a study file"):
        load_experiment_config(path, user=UserConfig())


@pytest.mark.parametrize("key", ["sweep: {}\n", "experiments: []\n"])
def test_any_study_key_marks_a_study(tmp_path: Path, key: str) -> None:
    path = write(tmp_path / "s.yaml", "task:\n  model: m\n" + key)
    with pytest.raises(ConfigError, match="study file"):
        load_experiment_config(path)


# ------------------------------------------------------------------ unknown keys


def test_every_unknown_key_is_listed_once_with_suggestions(tmp_path: Path) -> None:
    path = write(
        tmp_path / "typos.yaml",
        "taks:\n  model: x\n"
        "transformers:\n  batchsize: 4\n  sampling:\n    temprature: 0.5\n"
        "measurement:\n  warmup:\n    n_warmpu: 2\n"
        "zzzzzz: 1\n",
    )
    with pytest.raises(ConfigError) as info:
        load_experiment_config(path)
    message = info.value.message
    assert "`taks` (did you mean `task`?)" in message
    assert "`transformers.batchsize` (did you mean `batch_size`?)" in message
    assert "`transformers.sampling.temprature` (did you mean `temperature`?)" in message
    assert "`measurement.warmup.n_warmpu` (did you mean `n_warmup`?)" in message
    # No close match: listed without a suggestion.
    assert "`zzzzzz`" in message
    assert "`zzzzzz` (did you mean" not in message
    assert str(path) in message


def test_unknown_keys_and_bad_values_in_one_error() -> None:
    with pytest.raises(ConfigError) as info:
        validate_experiment({"taks": {}, "task": {"max_output_tokens": "many"}})
    assert "`taks`" in info.value.message
    assert "`task.max_output_tokens`" in info.value.message


# -------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("data", "dotted"),
    [
        ({"task": {"dataset": {"n_prompts": "lots"}}}, "task.dataset.n_prompts"),
        ({"transformers": {"batch_size": [1, 2]}}, "transformers.batch_size"),
        (
            {"measurement": {"warmup": {"thermal_floor_s": "long"}}},
            "measurement.warmup.thermal_floor_s",
        ),
        (
            {"engine": "vllm", "vllm": {"engine": {"enforce_eager": "maybe"}}},
            "vllm.engine.enforce_eager",
        ),
        ({"task": {"model": 12.5}}, "task.model"),
        ({"task": "smollm"}, "task"),
    ],
)
def test_wrong_type_names_the_dotted_field(data: dict[str, Any], dotted: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_experiment(data)
    assert f"`{dotted}`" in info.value.message


def test_wrong_type_in_a_file_names_the_field_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "t.yaml", "measurement:\n  sample_interval_ms: often\n")
    with pytest.raises(ConfigError) as info:
        load_experiment_config(path)
    assert "`measurement.sample_interval_ms`" in info.value.message
    assert str(path) in info.value.message


def test_cross_field_error_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        validate_experiment({"transformers": {"load_in_4bit": True, "load_in_8bit": True}})
    assert "load_in_4bit" in info.value.message
    assert "load_in_8bit" in info.value.message


# ------------------------------------------------------------------- bad files


def test_bad_yaml_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "task:\n  model: x\n  dataset: [1, 2\nengine: vllm\n")
    with pytest.raises(ConfigError) as info:
        load_experiment_config(path)
    assert "invalid YAML" in info.value.message
    assert "line 4" in info.value.message


def test_bad_json_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.json", '{\n  "task": {\n    "model": "x",\n  }\n}\n')
    with pytest.raises(ConfigError) as info:
        load_experiment_config(path)
    assert "invalid JSON" in info.value.message
    assert "line 4" in info.value.message


def test_yaml_python_tags_are_refused(tmp_path: Path) -> None:
    # The safe loader must not construct Python objects (let alone run commands).
    marker = tmp_path / "ran"
    path = write(
        tmp_path / "evil.yaml",
        f"task: !!python/object/apply:os.system ['touch {marker}']\n",
    )
    with pytest.raises(ConfigError):
        load_experiment_config(path)
    assert not marker.exists()


def _big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1) + "engine: fake\n")
    assert path.stat().st_size > MAX_CONFIG_BYTES == 1024 * 1024
    return path


def _dir_named_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "folder.yaml"
    path.mkdir()
    return path


def _non_utf8(tmp_path: Path) -> Path:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"task:\n  model: caf\xe9\xff\n")
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        pytest.param(lambda p: write(p / "empty.yaml", ""), "empty", id="empty"),
        pytest.param(lambda p: write(p / "comments.yaml", "# nothing\n"), "empty", id="comments"),
        pytest.param(lambda p: write(p / "empty.json", ""), "JSON", id="empty-json"),
        pytest.param(lambda p: write(p / "list.yaml", "- a\n- b\n"), "list", id="list"),
        pytest.param(lambda p: write(p / "scalar.yaml", "hello\n"), "mapping", id="scalar"),
        pytest.param(lambda p: write(p / "list.json", "[1, 2]"), "list", id="json-list"),
        pytest.param(_non_utf8, "UTF-8", id="non-utf8"),
        pytest.param(lambda p: p, "not a file", id="directory"),
        pytest.param(_dir_named_yaml, "not a file", id="directory-named-yaml"),
        pytest.param(lambda p: p / "missing.yaml", "not found", id="missing"),
        pytest.param(lambda p: write(p / "exp.txt", "engine: fake\n"), ".yaml", id="txt"),
        pytest.param(lambda p: write(p / "noext", "engine: fake\n"), ".yaml", id="no-extension"),
        pytest.param(_big_file, "limit", id="over-1-MiB"),
        pytest.param(lambda p: write(p / "keys.yaml", "1: 2\n"), "string", id="int-key"),
    ],
)
def test_unusable_files_give_config_error(tmp_path: Path, make: Any, words: str) -> None:
    path = make(tmp_path)
    try:
        load_experiment_config(path)
    except ConfigError as err:
        assert words in err.message
    except Exception as err:  # any other type is the failure this test guards against
        pytest.fail(f"{type(err).__name__} instead of ConfigError: {err}")
    else:
        pytest.fail("no error raised")


def test_config_error_is_an_llem_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(LlemError) as info:
        load_experiment_config(tmp_path / "missing.yaml")
    assert isinstance(info.value, ConfigError)
    assert info.value.hint


# -------------------------------------------------------------------- precedence


def test_precedence_overrides_then_file_then_user_then_defaults(tmp_path: Path) -> None:
    user = UserConfig(
        defaults={
            "task": {"max_output_tokens": 32, "random_seed": 1, "max_input_tokens": 128},
            "measurement": {"pue": 1.5, "sample_interval_ms": 50},
        }
    )
    path = write(
        tmp_path / "exp.yaml",
        "task:\n  max_output_tokens: 64\n  random_seed: 2\n"
        "measurement:\n  sample_interval_ms: 20\n",
    )
    cfg = load_experiment_config(
        path, {"task.random_seed": 9, "measurement.sample_interval_ms": 10}, user=user
    )
    assert cfg.task.random_seed == 9  # override over file and user
    assert cfg.measurement.sample_interval_ms == 10  # override over file and user
    assert cfg.task.max_output_tokens == 64  # file over user
    assert cfg.task.max_input_tokens == 128  # user over default
    assert cfg.measurement.pue == 1.5  # user over default
    assert cfg.task.dataset.n_prompts == 100  # built-in default
    assert cfg.measurement.baseline.duration_s == 30  # built-in default, sibling keys kept


def test_overrides_merge_into_file_sections(tmp_path: Path) -> None:
    path = write(tmp_path / "exp.yaml", "transformers:\n  batch_size: 4\n  dtype: float16\n")
    cfg = load_experiment_config(path, {"transformers.batch_size": 8})
    assert cfg.transformers is not None
    assert cfg.transformers.batch_size == 8
    assert cfg.transformers.dtype == "float16"


def test_overrides_without_a_file(tmp_path: Path) -> None:
    cfg = load_experiment_config(None, {"engine": "fake", "fake.batch_size": 3})
    assert cfg.engine == "fake"
    assert cfg.batch_size == 3


def test_user_config_from_env_is_used_when_none_is_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_file = write(tmp_path / "user.yaml", "defaults:\n  task:\n    random_seed: 123\n")
    monkeypatch.setenv("LLEM_USER_CONFIG", str(user_file))
    assert load_experiment_config().task.random_seed == 123
    path = write(tmp_path / "exp.yaml", "task:\n  random_seed: 5\n")
    assert load_experiment_config(path).task.random_seed == 5


def test_bad_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_experiment_config(None, {"transformers.batch_size": 0}, user=UserConfig())
    assert "`transformers.batch_size`" in info.value.message


# ------------------------------------------------------------------- nest_dotted


def test_nest_dotted_builds_nested_mappings() -> None:
    assert nest_dotted({"a.b.c": 1, "a.b.d": 2, "a.e": 3, "f": 4}) == {
        "a": {"b": {"c": 1, "d": 2}, "e": 3},
        "f": 4,
    }


@pytest.mark.parametrize(
    "flat",
    [
        {"a": 1, "a.b": 2},
        {"a.b": 1, "a.b.c": 2},
    ],
)
def test_nest_dotted_conflicts_are_errors(flat: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="conflicts"):
        nest_dotted(flat)


@pytest.mark.parametrize(
    "flat",
    [
        {"a.b": 2, "a": 1},
        {"a.b.c": 2, "a.b": 1},
    ],
)
def test_nest_dotted_conflicts_are_errors_in_any_order(flat: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="conflicts"):
        nest_dotted(flat)


@pytest.mark.parametrize("key", ["", ".a", "a.", "a..b"])
def test_nest_dotted_rejects_empty_parts(key: str) -> None:
    with pytest.raises(ConfigError, match="invalid override key"):
        nest_dotted({key: 1})


# -------------------------------------------------------------------- deep_merge


def test_deep_merge_semantics() -> None:
    base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "b": [1, 2], "c": 1, "d": {"k": 1}}
    top = {"a": {"y": {"q": 3}, "z": 4}, "b": [3], "c": {"new": 1}, "d": None, "e": 5}
    merged = deep_merge(base, top)
    assert merged == {
        "a": {"x": 1, "y": {"p": 1, "q": 3}, "z": 4},  # mappings merge key by key
        "b": [3],  # lists replace, never concatenate
        "c": {"new": 1},  # a mapping replaces a scalar
        "d": None,  # an explicit None replaces
        "e": 5,
    }


def test_deep_merge_does_not_mutate_its_inputs() -> None:
    base = {"a": {"x": 1}}
    top = {"a": {"y": 2}}
    deep_merge(base, top)
    assert base == {"a": {"x": 1}}
    assert top == {"a": {"y": 2}}


def test_deep_merge_with_empty_sides() -> None:
    assert deep_merge({}, {"a": 1}) == {"a": 1}
    assert deep_merge({"a": {"b": 1}}, {}) == {"a": {"b": 1}}
    assert deep_merge({"a": {"b": 1}}, {"a": {}}) == {"a": {"b": 1}}


# ------------------------------------------------------------------- user config


def test_load_user_config_reads_the_env_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path / "me.yaml",
        "cpu_tdp_w: 65\nresults_dir: /data/results\ndefaults:\n  engine: fake\n",
    )
    monkeypatch.setenv("LLEM_USER_CONFIG", str(path))
    user = load_user_config()
    assert user.cpu_tdp_w == 65
    assert user.results_dir == "/data/results"
    assert user.defaults == {"engine": "fake"}


def test_load_user_config_missing_file_gives_defaults(tmp_path: Path) -> None:
    user = load_user_config(tmp_path / "nope.yaml")
    assert user == UserConfig()
    assert user.defaults == {}
    assert user.cpu_tdp_w is None


def test_a_missing_file_named_by_llem_user_config_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_USER_CONFIG", str(tmp_path / "typo.yaml"))
    with pytest.raises(ConfigError) as info:
        load_user_config()
    assert "typo.yaml" in info.value.message and "LLEM_USER_CONFIG" in info.value.message


def test_load_user_config_rejects_unknown_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "me.yaml", "cpu_tdp: 65\ndefualts: {}\n")
    monkeypatch.setenv("LLEM_USER_CONFIG", str(path))
    with pytest.raises(ConfigError) as info:
        load_user_config()
    message = info.value.message
    assert "`cpu_tdp` (did you mean `cpu_tdp_w`?)" in message
    assert "`defualts` (did you mean `defaults`?)" in message
    assert "user config" in message


@pytest.mark.parametrize("text", ["cpu_tdp_w: -5\n", "cpu_tdp_w: .nan\n", "- a\n"])
def test_load_user_config_rejects_bad_values(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_user_config(write(tmp_path / "me.yaml", text))
