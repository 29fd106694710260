"""The matmul shape of a model, read from its Hugging Face config (and weight names)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from llenergymeasure.engines.model_files import model_shape, read_model_shape

SMOLLM2_135M: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
}


def test_a_llama_config_gives_grouped_kv_heads_a_gated_mlp_and_a_tied_head() -> None:
    shape = model_shape(SMOLLM2_135M)
    assert shape is not None
    assert (shape.n_layers, shape.hidden_size, shape.intermediate_size) == (30, 576, 1536)
    assert (shape.n_heads, shape.n_kv_heads, shape.head_dim) == (9, 3, 64)
    assert shape.vocab_size == 49152
    assert shape.gated_mlp and shape.tied_embeddings
    assert shape.n_experts is None and shape.quantization is None


def test_weight_names_decide_gating_and_tying() -> None:
    names = ["model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight"]
    plain = model_shape({**SMOLLM2_135M, "model_type": "something_new"}, names)
    assert plain is not None and not plain.gated_mlp
    untied = model_shape(SMOLLM2_135M, ["model.layers.0.mlp.gate_proj.weight", "lm_head.weight"])
    assert untied is not None and untied.gated_mlp and not untied.tied_embeddings


def test_gpt2_style_keys_and_defaults() -> None:
    shape = model_shape(
        {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257}
    )
    assert shape is not None
    assert (shape.hidden_size, shape.n_layers, shape.n_heads, shape.n_kv_heads) == (
        768,
        12,
        12,
        12,
    )
    assert shape.head_dim == 64 and shape.intermediate_size == 4 * 768
    assert not shape.gated_mlp


def test_a_mixture_of_experts_and_a_quantised_checkpoint() -> None:
    moe = model_shape(
        {
            **SMOLLM2_135M,
            "model_type": "mixtral",
            "num_local_experts": 8,
            "num_experts_per_tok": 2,
        }
    )
    assert moe is not None and (moe.n_experts, moe.n_active_experts) == (8, 2)
    quantised = model_shape(
        {**SMOLLM2_135M, "quantization_config": {"quant_method": "bitsandbytes", "bits": 4}}
    )
    assert quantised is not None and quantised.quantization == "bitsandbytes"
    # logical shape: the same numbers as the unquantised config
    assert quantised.hidden_size == 576 and quantised.intermediate_size == 1536


def test_a_multimodal_config_is_read_from_its_text_part() -> None:
    shape = model_shape({"model_type": "llava", "text_config": SMOLLM2_135M})
    assert shape is not None and shape.n_layers == 30


def test_configs_this_model_does_not_describe_give_none() -> None:
    assert model_shape({**SMOLLM2_135M, "kv_lora_rank": 512}) is None  # low-rank attention
    assert model_shape({**SMOLLM2_135M, "model_type": "mamba_like"}) is None  # unknown MLP
    assert model_shape({"model_type": "llama", "hidden_size": 576}) is None


def _write_safetensors(path: Path, names: list[str]) -> None:
    header = {
        n: {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
        for i, n in enumerate(names)
    }
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * 4 * len(names))


def test_read_model_shape_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**SMOLLM2_135M, "model_type": "x"}))
    _write_safetensors(tmp_path / "model.safetensors", ["model.layers.0.mlp.gate_proj.weight"])
    shape = read_model_shape(tmp_path)
    assert shape is not None and shape.gated_mlp and shape.tied_embeddings
    assert read_model_shape(tmp_path / "missing") is None
    (tmp_path / "config.json").write_text("[1, 2]")
    assert read_model_shape(tmp_path) is None
