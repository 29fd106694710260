"""What every engine reads from a model's files, in one place: the GGUF-to-safetensors
conversion, safetensors headers, end-of-sequence ids, parameter counts, the matmul shape
(for FLOPs), package versions.

Nothing here imports an engine's library at module level; transformers is imported only
by the conversion, which needs it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import struct
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from llenergymeasure.engines.resolve import ResolvedModel, converted_cache_dir
from llenergymeasure.records.compute import ModelShape
from llenergymeasure.records.versions import dist_version

__all__ = [
    "count_params",
    "dist_version",
    "dtype_bytes",
    "ensure_converted",
    "eos_ids",
    "hf_folder",
    "importable",
    "model_shape",
    "quiet_transformers",
    "read_model_shape",
    "safetensors_shapes",
    "stop_ids",
    "weights_mib",
]

_MIB = 2**20
# Names of input and position embedding tensors across model families; their parameters are
# lookups, not matmuls.
_EMBEDDING_SUFFIXES = (
    "embed_tokens.weight",
    "embed_positions.weight",
    "wte.weight",
    "wpe.weight",
    "word_embeddings.weight",
    "tok_embeddings.weight",
)
_BYTES_PER_ELEMENT = {"float32": 4, "float16": 2, "bfloat16": 2}


def importable(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules without a spec: imported, so present
        return module in sys.modules


def quiet_transformers() -> None:
    """No progress bars or advisory logging from transformers on our stderr."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def hf_folder(model: ResolvedModel) -> tuple[Path, list[str]]:
    """The Hugging Face folder an engine or server loads, with a note when it was made.

    A model folder is itself; a GGUF file becomes the safetensors folder it is converted
    to once and cached (:func:`ensure_converted`), and the note says so.
    """
    if not model.is_gguf:
        return model.path, []
    folder = ensure_converted(model)
    return folder, [f"weights dequantised from {model.path.name} to a safetensors cache"]


def ensure_converted(model: ResolvedModel) -> Path:
    """A safetensors folder for a GGUF model, converted once and cached.

    Loading the GGUF directly takes ~15-30 s; the converted folder loads in ~1 s.
    The conversion is written to a temporary folder and renamed, under a file
    lock, so a crash or a concurrent run never leaves a half-written cache.
    """
    from filelock import FileLock

    target = converted_cache_dir(model)
    if _is_converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if _is_converted(target):
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_transformers()
        folder, name = str(model.path.parent), model.path.name
        # The GGUF reader draws its own progress bar on stderr; the caller reports progress.
        with contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
            loaded = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, local_files_only=True
            )
        # The weights are dequantised on load; transformers refuses to save a model that still
        # carries the GGUF quantizer, so drop it: what we save is plain float tensors.
        loaded.hf_quantizer = None
        if hasattr(loaded.config, "quantization_config"):
            del loaded.config.quantization_config
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        loaded.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "CONVERTED_FROM").write_text(f"{model.path}\n", encoding="utf-8")
        tmp.replace(target)
    return target


def _is_converted(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "CONVERTED_FROM").is_file()


def safetensors_shapes(folder: Path) -> dict[str, tuple[str, list[int]]]:
    """Tensor name -> (dtype, shape) from the safetensors headers, without loading weights."""
    shapes: dict[str, tuple[str, list[int]]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        with file.open("rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        for name, entry in header.items():
            if name != "__metadata__":
                shapes[name] = (str(entry["dtype"]), [int(d) for d in entry["shape"]])
    return shapes


def _numel(shape: list[int]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n


def count_params(folder: Path) -> tuple[int | None, int | None]:
    """All parameters stored in the checkpoint, and those outside the input/position
    embeddings; (None, None) when the folder has no readable safetensors.

    A tied output head is stored once, as transformers counts it.
    """
    try:
        shapes = safetensors_shapes(folder)
    except (OSError, ValueError, struct.error, KeyError, TypeError):
        return None, None
    if not shapes:
        return None, None
    total = sum(_numel(shape) for _, shape in shapes.values())
    embedding = sum(
        _numel(shape) for name, (_, shape) in shapes.items() if name.endswith(_EMBEDDING_SUFFIXES)
    )
    return total, total - embedding


def dtype_bytes(dtype: str | None) -> int | None:
    """Bytes per element of a floating-point dtype (``bfloat16``: 2); None for others."""
    return _BYTES_PER_ELEMENT.get((dtype or "").removeprefix("torch."))


def weights_mib(folder: Path, dtype: str) -> float | None:
    """Weight memory at the dtype an engine runs: stored parameters × bytes per element."""
    total, _ = count_params(folder)
    width = dtype_bytes(dtype)
    if total is None or width is None:
        return None
    return total * width / _MIB


def eos_ids(folder: Path, tokenizer: Any) -> list[int]:
    """The tokens generation stops at, as transformers decides them: the generation config's
    ``eos_token_id`` (which may list several), else the tokenizer's."""
    eos: Any = None
    generation = folder / "generation_config.json"
    if generation.is_file():
        try:
            eos = json.loads(generation.read_text(encoding="utf-8")).get("eos_token_id")
        except (OSError, ValueError):
            eos = None
    return stop_ids(eos, tokenizer)


def stop_ids(eos: Any, tokenizer: Any) -> list[int]:
    """``eos`` (one id, a list of ids or None) as a list, falling back to the tokenizer's."""
    if eos is None:
        eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        return []
    return [int(e) for e in eos] if isinstance(eos, list | tuple) else [int(eos)]


# Families whose MLP is gated (gate, up, down) or plain (up, down), for configs read without
# the weights' names at hand. Others are read from the weights, or not at all.
_GATED_FAMILIES = frozenset(
    {
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma",
        "gemma2", "gemma3_text", "phi3", "olmo", "olmo2", "granite", "smollm3", "cohere",
    }
)  # fmt: skip
_PLAIN_FAMILIES = frozenset(
    {"gpt2", "gpt_neox", "gptj", "opt", "falcon", "phi", "bloom", "starcoder2", "gpt_bigcode"}
)
_GATED_TENSORS = ("gate_proj.weight", "gate_up_proj.weight", ".w1.weight", "w3.weight")
# Attention shapes this model does not describe (low-rank KV projections, linear attention).
_UNSUPPORTED_KEYS = ("kv_lora_rank", "linear_attn_config", "layer_types_linear")


def _first(config: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = config.get(key)
        if value is not None:
            return value
    return None


def model_shape(config: Mapping[str, Any], tensor_names: Iterable[str] = ()) -> ModelShape | None:
    """The matmul shape of a decoder-only model from its Hugging Face config; None when the
    config does not describe one this FLOPs model covers.

    ``tensor_names`` (the checkpoint's weight names, when known) settle whether the MLP is
    gated and whether the LM head is stored apart from the embedding.
    """
    config = config.get("text_config") or config
    names = list(tensor_names)
    hidden = _first(config, "hidden_size", "n_embd", "d_model")
    layers = _first(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = _first(config, "num_attention_heads", "n_head")
    vocab = config.get("vocab_size")
    if not all(isinstance(v, int) and v > 0 for v in (hidden, layers, heads, vocab)):
        return None
    if any(config.get(key) is not None for key in _UNSUPPORTED_KEYS):
        return None
    gated = _gated(config.get("model_type"), names)
    if gated is None:
        return None
    kv_heads = _first(config, "num_key_value_heads", "num_kv_heads")
    if kv_heads is None:
        kv_heads = 1 if config.get("multi_query") else heads
    n_experts = _first(config, "num_local_experts", "num_experts", "n_routed_experts")
    width = _first(config, "moe_intermediate_size") if n_experts else None
    width = width or _first(config, "intermediate_size", "n_inner", "ffn_dim") or 4 * hidden
    quant = config.get("quantization_config")
    return ModelShape(
        model_type=config.get("model_type"),
        n_layers=layers,
        hidden_size=hidden,
        n_heads=heads,
        n_kv_heads=int(kv_heads),
        head_dim=int(config.get("head_dim") or hidden // heads),
        intermediate_size=int(width),
        vocab_size=vocab,
        gated_mlp=gated,
        tied_embeddings=(
            not any(n.endswith("lm_head.weight") for n in names)
            if names
            else bool(config.get("tie_word_embeddings", False))
        ),
        n_experts=int(n_experts) if n_experts else None,
        n_active_experts=int(config.get("num_experts_per_tok") or 1) if n_experts else None,
        quantization=str(quant.get("quant_method")) if isinstance(quant, Mapping) else None,
    )


def _gated(model_type: Any, names: list[str]) -> bool | None:
    if any(n.endswith(_GATED_TENSORS) for n in names):
        return True
    if any(n.endswith(("up_proj.weight", "fc1.weight", "c_fc.weight")) for n in names):
        return False
    if model_type in _GATED_FAMILIES:
        return True
    if model_type in _PLAIN_FAMILIES:
        return False
    return None


def read_model_shape(folder: Path) -> ModelShape | None:
    """:func:`model_shape` of a model folder (``config.json`` and safetensors headers)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    try:
        names: Iterable[str] = safetensors_shapes(folder)
    except (OSError, ValueError, struct.error, KeyError, TypeError):
        names = ()
    return model_shape(config, names)
