"""The settings engine parity compares, read from what a completed run recorded: the
precision and device actually used, the engine's effective arguments, and the config.

Every setting has one name across engines, and says whether a difference in it makes two
engines' figures incomparable (``affects_like_for_like``) or only differs by the engines'
nature (static batches vs continuous batching, the KV cache layout).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llenergymeasure.config.engines import TensorRTConfig, TransformersConfig, VLLMConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.records.result import ExperimentResult

__all__ = ["Setting", "settings_of"]


_ENGINE_DEFAULT = "engine default"


@dataclass(frozen=True)
class Setting:
    value: str
    affects_like_for_like: bool


def settings_of(result: ExperimentResult) -> dict[str, Setting]:
    """Every compared setting of one run, as text; names are shared by all engines."""
    config, engine = result.config, result.engine
    task = config.task
    chat = {None: "when the model has one", True: "on", False: "off"}[task.chat_template]
    applied = _find(result.engine_args, "chat_template")
    if isinstance(applied, bool):
        chat = "on" if applied else "off"
    return {
        "model loaded": Setting(_model_loaded(result), True),
        "device": Setting(result.model.device or "unknown", True),
        "tokenizer": Setting(
            "fake word tokenizer" if engine == "fake" else "the model's Hugging Face tokenizer",
            True,
        ),
        "chat template": Setting(chat, True),
        "truncation (max_input_tokens)": Setting(str(task.max_input_tokens), True),
        "max_output_tokens": Setting(str(task.max_output_tokens), True),
        "stop criteria": Setting(_stop_criteria(config), True),
        "decoding": Setting(_decoding(config), True),
        "batch semantics": Setting(_batch_semantics(result), False),
        "max concurrent requests": Setting(_concurrency(result), True),
        "KV cache": Setting(_kv_cache(result), False),
        "KV cache precision": Setting(_kv_precision(result), True),
        "precision used": Setting(_dtype(result.model.dtype), True),
        "weight quantisation": Setting(_quantisation(config), True),
        "methodology": Setting(result.methodology.version, True),
    }


def _model_loaded(result: ExperimentResult) -> str:
    """The weights by content when known: two environments hold the same file at two paths."""
    model = result.model
    if model.fingerprint is not None:
        return f"{model.resolved_label} ({model.kind}, content {model.fingerprint})"
    return f"{model.resolved} ({model.kind})"


def _find(args: Mapping[str, Any], name: str) -> Any:
    """The first value stored under ``name`` anywhere in the engine's (nested) arguments."""
    if name in args:
        return args[name]
    for value in args.values():
        if isinstance(value, Mapping):
            found = _find(value, name)
            if found is not None:
                return found
    return None


def _or_default(value: Any) -> str:
    return _ENGINE_DEFAULT if value is None else str(value)


def _decoding(config: ExperimentConfig) -> str:
    """``greedy``, ``sampling (...)``, ``beam search (...)`` or ``model default (...)``."""
    engine = config.engine
    if engine == "fake":
        return "greedy"
    if engine == "transformers":
        t = config.transformers or TransformersConfig()
        s = t.sampling
        if t.num_beams is not None and t.num_beams > 1:
            return f"beam search (num_beams={t.num_beams})"
        if s.do_sample is False:
            return "greedy" + _penalty(s.repetition_penalty)
        if s.do_sample is None:
            return "model default (transformers.sampling.do_sample unset)"
        return "sampling" + _params(s.temperature, s.top_k, s.top_p, s.repetition_penalty)
    if engine == "vllm":
        v = (config.vllm or VLLMConfig()).sampling
        if v.temperature == 0.0:
            return "greedy" + _penalty(v.repetition_penalty)
        return "sampling" + _params(v.temperature, v.top_k, v.top_p, v.repetition_penalty)
    if engine == "tensorrt":
        r = (config.tensorrt or TensorRTConfig()).sampling
        if r.temperature == 0.0 or r.top_k == 1:
            return "greedy" + _penalty(r.repetition_penalty)
        return "sampling" + _params(r.temperature, r.top_k, r.top_p, r.repetition_penalty)
    return "model default (unknown engine)"


def _penalty(repetition_penalty: float | None) -> str:
    if repetition_penalty is None or repetition_penalty == 1.0:
        return ""
    return f" (repetition_penalty={repetition_penalty})"


def _params(
    temperature: float | None, top_k: int | None, top_p: float | None, penalty: float | None
) -> str:
    shown = [
        f"{name}={_or_default(value)}"
        for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p))
    ]
    if penalty is not None:
        shown.append(f"repetition_penalty={penalty}")
    return f" ({', '.join(shown)})"


def _stop_criteria(config: ExperimentConfig) -> str:
    """When a request stops, beyond max_output_tokens."""
    exact = config.task.dataset.output_len
    if exact is not None:
        return f"exactly {exact} tokens (synthetic output_len)"
    engine = config.engine
    minimum: int | None = None
    if engine == "fake":
        fake = config.fake
        n = fake.output_tokens if fake is not None else None
        return "max_output_tokens only" if n is None else f"exactly {n} tokens (fake engine)"
    if engine == "transformers":
        minimum = (config.transformers or TransformersConfig()).sampling.min_new_tokens
    elif engine == "vllm":
        sampling = (config.vllm or VLLMConfig()).sampling
        if sampling.ignore_eos:
            return "max_output_tokens only (ignore_eos)"
        minimum = sampling.min_tokens
    elif engine == "tensorrt":
        minimum = (config.tensorrt or TensorRTConfig()).sampling.min_tokens
    text = "end-of-sequence token or max_output_tokens"
    return text if not minimum else f"{text}, at least {minimum} tokens"


def _batch_semantics(result: ExperimentResult) -> str:
    config = result.config
    if config.engine in ("transformers", "fake"):
        return "static batches, padded to the longest prompt; a batch ends with its last request"
    if config.engine == "vllm":
        return "continuous batching: requests join and leave the running batch at every step"
    if config.engine == "tensorrt":
        return "in-flight batching: requests join and leave the running batch at every step"
    return "unknown"


def _concurrency(result: ExperimentResult) -> str:
    """The most requests the engine runs at once, as effectively configured."""
    config, args = result.config, result.engine_args
    if config.engine == "transformers":
        return str((config.transformers or TransformersConfig()).batch_size)
    if config.engine == "fake":
        return str(config.fake.batch_size if config.fake is not None else 1)
    if config.engine == "vllm":
        value = (config.vllm or VLLMConfig()).engine.max_num_seqs
        return _or_default(value if value is not None else _find(args, "max_num_seqs"))
    if config.engine == "tensorrt":
        value = (config.tensorrt or TensorRTConfig()).max_batch_size
        return _or_default(value if value is not None else _find(args, "max_batch_size"))
    return _ENGINE_DEFAULT


def _kv_cache(result: ExperimentResult) -> str:
    config, args = result.config, result.engine_args
    if config.engine == "fake":
        return "none (fake engine)"
    if config.engine == "transformers":
        t = config.transformers or TransformersConfig()
        if t.use_cache is False:
            return "off"
        return f"{t.cache_implementation or 'dynamic'} cache, grown per batch"
    if config.engine == "vllm":
        e = (config.vllm or VLLMConfig()).engine
        block = e.block_size if e.block_size is not None else _find(args, "block_size")
        prefix = e.enable_prefix_caching
        if prefix is None:
            prefix = _find(args, "enable_prefix_caching")
        memory = e.gpu_memory_utilization
        if memory is None:
            memory = _find(args, "gpu_memory_utilization")
        return (
            f"paged, block_size={_or_default(block)}, prefix caching {_or_default(prefix)}, "
            f"gpu_memory_utilization={_or_default(memory)}"
        )
    if config.engine == "tensorrt":
        kv = (config.tensorrt or TensorRTConfig()).kv_cache_config
        return (
            f"paged, block reuse {_or_default(kv.enable_block_reuse)}, "
            f"free_gpu_memory_fraction={_or_default(kv.free_gpu_memory_fraction)}"
        )
    return "unknown"


def _dtype(value: str | None) -> str:
    return "unknown" if value is None else value.removeprefix("torch.")


def _kv_precision(result: ExperimentResult) -> str:
    config = result.config
    # Unquantised, the KV cache holds the weights' precision, compared as "precision used".
    model_dtype = "as the weights"
    if config.engine == "vllm":
        kv = (config.vllm or VLLMConfig()).engine.kv_cache_dtype
        return model_dtype if kv in (None, "auto") else str(kv)
    if config.engine == "tensorrt":
        quant = (config.tensorrt or TensorRTConfig()).quant_config.kv_cache_quant_algo
        return model_dtype if quant is None else quant
    if config.engine == "fake":
        return "none (fake engine)"
    return model_dtype


def _quantisation(config: ExperimentConfig) -> str:
    if config.engine == "transformers":
        t = config.transformers or TransformersConfig()
        if t.load_in_4bit:
            return f"bitsandbytes 4-bit ({t.bnb_4bit_quant_type or 'nf4'})"
        if t.load_in_8bit:
            return "bitsandbytes 8-bit"
    elif config.engine == "vllm":
        q = (config.vllm or VLLMConfig()).engine.quantization
        if q:
            return str(q)
    elif config.engine == "tensorrt":
        q = (config.tensorrt or TensorRTConfig()).quant_config.quant_algo
        if q:
            return q
    return "none"
