"""ExperimentConfig and its sections: defaults, cross-field rules, presets, strictness."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from llenergymeasure.config.engines import (
    FakeConfig,
    TensorRTConfig,
    TransformersConfig,
    TransformersSamplingConfig,
    VLLMConfig,
)
from llenergymeasure.config.models import SAMPLING_PRESETS, ExperimentConfig

# --------------------------------------------------------------------- defaults


def test_task_defaults_match_design() -> None:
    task = ExperimentConfig().task
    assert task.dataset.source == "builtin"
    assert task.dataset.n_prompts == 100
    assert task.dataset.order == "interleaved"
    assert task.dataset.input_len is None
    assert task.dataset.output_len is None
    assert task.max_input_tokens == 256
    assert task.max_output_tokens == 256
    assert task.random_seed == 42


def test_engine_and_measurement_defaults_match_design() -> None:
    cfg = ExperimentConfig()
    assert cfg.engine == "transformers"
    assert cfg.sampling_preset is None
    m = cfg.measurement
    assert m.energy_sampler == "auto"
    assert m.sample_interval_ms == 100
    assert m.carbon_intensity_g_per_kwh is None
    assert m.pue == 1.0


def test_warmup_defaults_match_design() -> None:
    w = ExperimentConfig().measurement.warmup
    assert w.enabled is True
    assert w.n_warmup == 5
    assert w.thermal_floor_s == 60.0
    assert w.convergence is False
    assert w.cv_threshold == 0.05
    assert w.window == 3
    assert w.min == 5
    assert w.max == 20


def test_baseline_defaults_match_design() -> None:
    b = ExperimentConfig().measurement.baseline
    assert b.enabled is True
    assert b.duration_s == 30.0
    assert b.strategy == "validated"
    assert b.cache_ttl_s == 7200.0
    # "validated": a 5 s spot check every 5 runs, re-measure on > 10 % drift.
    assert b.spot_check_s == 5.0
    assert b.validate_every == 5
    assert b.drift_threshold == pytest.approx(0.10)


def test_transformers_section_defaults() -> None:
    tf = ExperimentConfig().transformers
    assert tf is not None
    assert tf.batch_size == 1
    # Every other field means "engine default".
    assert tf.dtype is None
    assert tf.attn_implementation is None
    assert tf.load_in_4bit is None
    assert tf.sampling == TransformersSamplingConfig()
    assert ExperimentConfig().batch_size == 1


# --------------------------------------------------------------- engine section


@pytest.mark.parametrize(
    ("engine", "section_type"),
    [
        ("transformers", TransformersConfig),
        ("vllm", VLLMConfig),
        ("tensorrt", TensorRTConfig),
        ("fake", FakeConfig),
    ],
)
def test_section_of_chosen_engine_is_filled_in(engine: str, section_type: type) -> None:
    cfg = ExperimentConfig(engine=engine)
    section = getattr(cfg, engine)
    assert isinstance(section, section_type)
    assert section == section_type()
    others = [n for n in ("transformers", "vllm", "tensorrt", "fake") if n != engine]
    assert all(getattr(cfg, n) is None for n in others)


def test_explicit_section_values_are_kept() -> None:
    cfg = ExperimentConfig(transformers={"batch_size": 8, "dtype": "bfloat16"})
    assert cfg.transformers is not None
    assert cfg.transformers.batch_size == 8
    assert cfg.transformers.dtype == "bfloat16"
    assert cfg.batch_size == 8


def test_section_given_as_model_instance() -> None:
    cfg = ExperimentConfig(engine="fake", fake=FakeConfig(batch_size=3))
    assert cfg.fake == FakeConfig(batch_size=3)
    assert cfg.batch_size == 3


def test_vllm_batch_size_is_max_num_seqs() -> None:
    cfg = ExperimentConfig(engine="vllm", vllm={"engine": {"max_num_seqs": 16}})
    assert cfg.batch_size == 16


# --------------------------------------------------------- cross-field validators


def _error_text(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        ExperimentConfig.model_validate(data)
    return str(info.value)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        pytest.param(
            {"transformers": {"load_in_4bit": True, "load_in_8bit": True}},
            ["load_in_4bit", "load_in_8bit"],
            id="4bit-with-8bit",
        ),
        pytest.param(
            {"transformers": {"bnb_4bit_quant_type": "nf4"}},
            ["bnb_4bit_", "load_in_4bit"],
            id="bnb-without-4bit",
        ),
        pytest.param(
            {"transformers": {"bnb_4bit_compute_dtype": "bfloat16", "load_in_8bit": True}},
            ["bnb_4bit_", "load_in_4bit"],
            id="bnb-with-8bit",
        ),
        pytest.param(
            {"transformers": {"attn_implementation": "flash_attention_2", "dtype": "float32"}},
            ["flash_attention_2", "float32"],
            id="flash-attention-float32",
        ),
        pytest.param(
            {"transformers": {"torch_compile_mode": "max-autotune"}},
            ["torch_compile_mode", "torch_compile"],
            id="compile-mode-without-compile",
        ),
        pytest.param(
            {"transformers": {"torch_compile_backend": "inductor", "torch_compile": False}},
            ["torch_compile_backend", "torch_compile"],
            id="compile-backend-with-compile-false",
        ),
        pytest.param(
            {
                "engine": "vllm",
                "vllm": {"engine": {"max_num_batched_tokens": 512, "max_model_len": 2048}},
            },
            ["max_num_batched_tokens", "max_model_len", "enable_chunked_prefill"],
            id="vllm-batched-tokens-below-model-len",
        ),
        pytest.param(
            {"task": {"dataset": {"source": "synthetic"}}},
            ["synthetic", "input_len"],
            id="synthetic-without-input-len",
        ),
        pytest.param(
            {"task": {"dataset": {"source": "builtin", "input_len": 32}}},
            ["input_len", "synthetic"],
            id="input-len-on-builtin",
        ),
        pytest.param(
            {"task": {"max_output_tokens": 64, "dataset": {"output_len": 65}}},
            ["output_len", "max_output_tokens"],
            id="output-len-over-max-output-tokens",
        ),
        pytest.param(
            {
                "task": {
                    "max_input_tokens": 16,
                    "dataset": {"source": "synthetic", "input_len": 17},
                }
            },
            ["input_len", "max_input_tokens"],
            id="input-len-over-max-input-tokens",
        ),
        pytest.param(
            {"measurement": {"warmup": {"convergence": True, "min": 10, "max": 5}}},
            ["min", "max"],
            id="warmup-min-over-max",
        ),
        pytest.param(
            {"measurement": {"warmup": {"convergence": True, "window": 8, "max": 5}}},
            ["window", "max"],
            id="warmup-window-over-max",
        ),
        pytest.param(
            {"engine": "transformers", "vllm": {"dtype": "auto"}},
            ["vllm:", "engine: transformers"],
            id="vllm-section-with-transformers",
        ),
        pytest.param(
            {"engine": "vllm", "transformers": {"batch_size": 2}},
            ["transformers:", "engine: vllm"],
            id="transformers-section-with-vllm",
        ),
    ],
)
def test_cross_field_rule_names_the_fields(data: dict[str, Any], named: list[str]) -> None:
    text = _error_text(data)
    for word in named:
        assert word in text


def test_cross_field_rules_accept_the_valid_combinations() -> None:
    cfg = ExperimentConfig(
        task={"max_output_tokens": 64, "dataset": {"source": "synthetic", "input_len": 16}},
        transformers={
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "attn_implementation": "flash_attention_2",
            "dtype": "bfloat16",
            "torch_compile": True,
            "torch_compile_mode": "default",
        },
        measurement={"warmup": {"convergence": False, "min": 10, "max": 5}},
    )
    assert cfg.task.dataset.input_len == 16
    assert cfg.transformers is not None
    assert cfg.transformers.bnb_4bit_quant_type == "nf4"
    # min > max only matters in convergence mode.
    assert cfg.measurement.warmup.min == 10
    chunked = ExperimentConfig(
        engine="vllm",
        vllm={
            "engine": {
                "max_num_batched_tokens": 512,
                "max_model_len": 2048,
                "enable_chunked_prefill": True,
            }
        },
    )
    assert chunked.vllm is not None
    assert chunked.vllm.engine.enable_chunked_prefill is True


# ---------------------------------------------------------------- sampling presets


@pytest.mark.parametrize("preset", sorted(SAMPLING_PRESETS))
def test_preset_fills_transformers_sampling(preset: str) -> None:
    cfg = ExperimentConfig(sampling_preset=preset)
    assert cfg.transformers is not None
    sampling = cfg.transformers.sampling.model_dump()
    for key, value in SAMPLING_PRESETS[preset].items():
        assert sampling[key] == value


def test_standard_preset_values_in_transformers() -> None:
    cfg = ExperimentConfig(sampling_preset="standard")
    assert cfg.transformers is not None
    s = cfg.transformers.sampling
    assert (s.do_sample, s.temperature, s.top_p, s.top_k) == (True, 0.7, 0.9, 50)


def test_explicit_transformers_sampling_wins_over_preset() -> None:
    cfg = ExperimentConfig(
        sampling_preset="creative",
        transformers={"batch_size": 2, "sampling": {"temperature": 0.2, "top_k": 7}},
    )
    assert cfg.transformers is not None
    s = cfg.transformers.sampling
    assert s.temperature == 0.2
    assert s.top_k == 7
    # Preset values the user did not set are filled in.
    assert s.do_sample is True
    assert s.top_p == 0.95
    assert cfg.transformers.batch_size == 2


def test_explicit_sampling_given_as_model_wins_over_preset() -> None:
    section = TransformersConfig(sampling=TransformersSamplingConfig(do_sample=False))
    cfg = ExperimentConfig(sampling_preset="standard", transformers=section)
    assert cfg.transformers is not None
    assert cfg.transformers.sampling.do_sample is False
    assert cfg.transformers.sampling.temperature == 0.7


def test_deterministic_preset_is_greedy_in_transformers() -> None:
    cfg = ExperimentConfig(sampling_preset="deterministic")
    assert cfg.transformers is not None
    assert cfg.transformers.sampling.do_sample is False
    assert cfg.transformers.sampling.temperature is None


def test_deterministic_preset_is_temperature_zero_in_vllm() -> None:
    cfg = ExperimentConfig(engine="vllm", sampling_preset="deterministic")
    assert cfg.vllm is not None
    assert cfg.vllm.sampling.temperature == 0.0
    assert cfg.vllm.sampling.top_p is None


def test_preset_fills_vllm_sampling_and_explicit_wins() -> None:
    cfg = ExperimentConfig(
        engine="vllm",
        sampling_preset="factual",
        vllm={"dtype": "bfloat16", "sampling": {"top_k": 5, "ignore_eos": True}},
    )
    assert cfg.vllm is not None
    s = cfg.vllm.sampling
    assert s.temperature == 0.3
    assert s.top_p == 0.85
    assert s.top_k == 5
    assert s.ignore_eos is True
    assert cfg.vllm.dtype == "bfloat16"


def test_explicit_vllm_temperature_wins_over_deterministic() -> None:
    cfg = ExperimentConfig(
        engine="vllm", sampling_preset="deterministic", vllm={"sampling": {"temperature": 0.5}}
    )
    assert cfg.vllm is not None
    assert cfg.vllm.sampling.temperature == 0.5


def test_preset_fills_tensorrt_sampling() -> None:
    cfg = ExperimentConfig(engine="tensorrt", sampling_preset="deterministic")
    assert cfg.tensorrt is not None
    assert cfg.tensorrt.sampling.temperature == 0.0


def test_unknown_preset_is_rejected() -> None:
    assert "sampling_preset" in _error_text({"sampling_preset": "greedy"})


def test_preset_config_round_trips_through_its_dump() -> None:
    cfg = ExperimentConfig(
        sampling_preset="standard", transformers={"sampling": {"temperature": 0.1}}
    )
    again = ExperimentConfig.model_validate(cfg.model_dump(mode="json"))
    assert again == cfg


# ------------------------------------------------------------------ value ranges


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    "path",
    [
        ("measurement", "pue"),
        ("measurement", "carbon_intensity_g_per_kwh"),
        ("measurement", "warmup", "thermal_floor_s"),
        ("measurement", "warmup", "cv_threshold"),
        ("measurement", "baseline", "duration_s"),
        ("measurement", "baseline", "cache_ttl_s"),
        ("transformers", "sampling", "temperature"),
        ("transformers", "sampling", "top_p"),
    ],
)
def test_non_finite_floats_are_rejected(path: tuple[str, ...], bad: float) -> None:
    data: dict[str, Any] = {path[-1]: bad}
    for key in reversed(path[:-1]):
        data = {key: data}
    text = _error_text(data)
    assert path[-1] in text
    assert "finite" in text


def test_non_finite_vllm_floats_are_rejected() -> None:
    text = _error_text({"engine": "vllm", "vllm": {"engine": {"gpu_memory_utilization": math.nan}}})
    assert "gpu_memory_utilization" in text
    text = _error_text({"engine": "vllm", "vllm": {"sampling": {"temperature": math.inf}}})
    assert "temperature" in text


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"task": {"dataset": {"n_prompts": 0}}}, "n_prompts"),
        ({"task": {"dataset": {"n_prompts": -1}}}, "n_prompts"),
        ({"task": {"max_input_tokens": 0}}, "max_input_tokens"),
        ({"task": {"max_output_tokens": 0}}, "max_output_tokens"),
        ({"task": {"max_output_tokens": -5}}, "max_output_tokens"),
        ({"task": {"random_seed": -1}}, "random_seed"),
        ({"task": {"dataset": {"source": "synthetic", "input_len": 0}}}, "input_len"),
        ({"transformers": {"batch_size": 0}}, "batch_size"),
        ({"transformers": {"batch_size": -2}}, "batch_size"),
        ({"transformers": {"num_beams": 0}}, "num_beams"),
        ({"measurement": {"sample_interval_ms": 0}}, "sample_interval_ms"),
        ({"measurement": {"warmup": {"n_warmup": -1}}}, "n_warmup"),
        ({"measurement": {"baseline": {"duration_s": 0}}}, "duration_s"),
        ({"measurement": {"pue": 0.5}}, "pue"),
        ({"engine": "vllm", "vllm": {"engine": {"max_num_seqs": 0}}}, "max_num_seqs"),
        ({"engine": "fake", "fake": {"batch_size": 0}}, "batch_size"),
    ],
)
def test_out_of_range_values_are_rejected(data: dict[str, Any], field: str) -> None:
    assert field in _error_text(data)


@pytest.mark.parametrize(
    "data",
    [
        {"engine": "llamacpp"},
        {"measurement": {"energy_sampler": "powermeter"}},
        {"task": {"dataset": {"order": "random"}}},
        {"transformers": {"dtype": "float64"}},
        {"task": {"model": ""}},
    ],
)
def test_values_outside_the_allowed_set_are_rejected(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ExperimentConfig.model_validate(data)


@pytest.mark.parametrize(
    "data",
    [
        {"taks": {}},
        {"task": {"modle": "x"}},
        {"transformers": {"batchsize": 2}},
        {"measurement": {"warmup": {"n_warmups": 2}}},
    ],
)
def test_unknown_keys_are_forbidden_at_every_level(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        ExperimentConfig.model_validate(data)
    assert any(e["type"] == "extra_forbidden" for e in info.value.errors())


# ------------------------------------------------------------------------ frozen


def test_configs_are_frozen() -> None:
    cfg = ExperimentConfig()
    with pytest.raises(ValidationError):
        cfg.engine = "vllm"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        cfg.task.max_output_tokens = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        cfg.measurement.warmup.n_warmup = 0  # type: ignore[misc]
    assert cfg.transformers is not None
    with pytest.raises(ValidationError):
        cfg.transformers.batch_size = 4  # type: ignore[misc]
    assert cfg == ExperimentConfig()


def test_config_equality_follows_values() -> None:
    assert ExperimentConfig(task={"random_seed": 1}) == ExperimentConfig(task={"random_seed": 1})
    assert ExperimentConfig(task={"random_seed": 1}) != ExperimentConfig(task={"random_seed": 2})
