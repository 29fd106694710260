"""The TensorRT-LLM engine: build (or reuse) a TensorRT engine, then in-flight batching.

Building and caching the TensorRT engine is ``engines/tensorrt_build.py``.

Prompts are chat-templated, truncated and tokenised here with the model's Hugging Face
tokenizer, exactly as the transformers engine does (``engines/text.py``), and the
engine is given token ids: both engines then see the same input.

``tensorrt_llm`` is imported inside methods only. The engine needs an NVIDIA GPU of
compute capability 7.5 or newer (:meth:`TensorRTEngine.gpu_requirements`).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llenergymeasure.config.engines import TensorRTConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.engines.base import (
    GenerationOutput,
    ModelInfo,
    NoDeviceHooks,
    PreparedPrompts,
    ProgressCallback,
    RequestOutput,
)
from llenergymeasure.engines.model_files import count_params, eos_ids, hf_folder, importable
from llenergymeasure.engines.requirements import GpuRequirement
from llenergymeasure.engines.resolve import ResolvedModel, converted_cache_dir
from llenergymeasure.engines.tensorrt_build import (
    build_objects,
    build_or_load,
    engine_cache_key,
    engine_dtype,
    engine_mib,
    gpu_identity,
    runtime_objects,
    sampling_kwargs,
    seed_field,
)
from llenergymeasure.engines.text import TokenizerText, resolve_chat_template
from llenergymeasure.errors import EngineError
from llenergymeasure.records.base import Availability

__all__ = [
    "CONTINUOUS_BATCH_TIMING",
    "TensorRTEngine",
    "TensorRTLoadedModel",
]

# Turing: the oldest generation TensorRT-LLM supports.
MIN_COMPUTE_CAPABILITY = (7, 5)
_BF16_COMPUTE_CAPABILITY = (8, 0)  # Ampere
_FP8_COMPUTE_CAPABILITY = (8, 9)  # Ada and Hopper
_FP4_COMPUTE_CAPABILITY = (10, 0)  # Blackwell

CONTINUOUS_BATCH_TIMING = (
    "in-flight (continuous) batching, every request submitted at the start and streamed: "
    "TTFT = submission -> the request's first streamed token (queueing included); "
    "inter-token latency = (last token time - first token time) / (tokens - 1); "
    "latency = submission -> the request's last token"
)


def _version() -> str | None:
    try:
        return importlib.metadata.version("tensorrt-llm")
    except importlib.metadata.PackageNotFoundError:
        module = sys.modules.get("tensorrt_llm")
        version = getattr(module, "__version__", None)
        return None if version is None else str(version)


class TensorRTEngine:
    """TensorRT-LLM's ``LLM`` API on NVIDIA GPUs, with engines cached by build settings."""

    name = "tensorrt"

    def probe(self) -> Availability:
        if not importable("tensorrt_llm"):
            return Availability(
                False,
                "tensorrt_llm not installed: pip install 'llenergymeasure[tensorrt]' "
                "(Linux, CUDA and an NVIDIA GPU of compute capability 7.5 or newer)",
            )
        return Availability(True, "tensorrt_llm importable", _version())

    def devices(self, config: ExperimentConfig) -> list[str]:
        n = (config.tensorrt or TensorRTConfig()).tensor_parallel_size or 1
        return [f"cuda:{i}" for i in range(n)]

    def gpu_requirements(self, config: ExperimentConfig) -> list[GpuRequirement]:
        """TensorRT-LLM needs Turing or newer; bfloat16, FP8 and NVFP4 need newer still."""
        section = config.tensorrt or TensorRTConfig()
        n = len(self.devices(config))
        found = [GpuRequirement(n, MIN_COMPUTE_CAPABILITY, "TensorRT-LLM")]
        if section.dtype == "bfloat16":
            found.append(GpuRequirement(n, _BF16_COMPUTE_CAPABILITY, "bfloat16 (tensorrt.dtype)"))
        quant = section.quant_config
        fp8 = [
            f"tensorrt.quant_config.{name}: FP8"
            for name, value in (
                ("quant_algo", quant.quant_algo),
                ("kv_cache_quant_algo", quant.kv_cache_quant_algo),
            )
            if value == "FP8"
        ]
        if fp8:
            found.append(GpuRequirement(n, _FP8_COMPUTE_CAPABILITY, f"FP8 ({', '.join(fp8)})"))
        if quant.quant_algo == "NVFP4":
            found.append(
                GpuRequirement(
                    n, _FP4_COMPUTE_CAPABILITY, "NVFP4 (tensorrt.quant_config.quant_algo: NVFP4)"
                )
            )
        return found

    def preflight(self, config: ExperimentConfig, model: ResolvedModel) -> list[str]:
        problems = []
        if model.is_gguf and not (converted_cache_dir(model) / "config.json").is_file():
            missing = [m for m in ("transformers", "gguf") if not importable(m)]
            if missing:
                problems.append(
                    f"TensorRT-LLM reads Hugging Face folders; converting the .gguf model once "
                    f"needs {' and '.join(missing)}: pip install {' '.join(missing)}"
                )
        if not importable("transformers"):
            problems.append(
                "the tensorrt engine tokenises with the model's Hugging Face tokenizer: "
                "pip install transformers"
            )
        return problems

    def load(self, config: ExperimentConfig, model: ResolvedModel) -> TensorRTLoadedModel:
        try:
            return TensorRTLoadedModel.load(config, model, self.devices(config))
        except EngineError:
            raise
        except (OSError, ValueError, RuntimeError, ImportError, KeyError, TypeError) as err:
            raise EngineError(
                f"TensorRT-LLM could not load `{model.name}`: {type(err).__name__}: {err}",
                hint="run `llem doctor` to check the GPU and the tensorrt_llm installation",
            ) from err


# ------------------------------------------------------------------ the engine cache


# ------------------------------------------------------------------ arguments


# ------------------------------------------------------------------ the loaded model


@dataclass(frozen=True)
class _Prompts:
    ids: list[list[int]]


class TensorRTLoadedModel(TokenizerText, NoDeviceHooks):
    """A TensorRT engine in GPU memory and the model's Hugging Face tokenizer."""

    def __init__(
        self,
        config: ExperimentConfig,
        llm: Any,
        tokenizer: Any,
        info: ModelInfo,
        sampling_params: Any,
        eos_ids: Sequence[int],
        use_chat_template: bool,
    ) -> None:
        super().__init__(config, tokenizer, use_chat_template=use_chat_template)
        self._llm = llm
        self._sampling_params = sampling_params
        self._eos = set(eos_ids)
        self._end_id = eos_ids[0] if eos_ids else None
        self.info = info

    @classmethod
    def load(
        cls, config: ExperimentConfig, model: ResolvedModel, devices: list[str]
    ) -> TensorRTLoadedModel:
        from tensorrt_llm.llmapi import SamplingParams
        from transformers import AutoTokenizer

        folder, notes = hf_folder(model)
        # The tokenizer first: a config it cannot serve fails before minutes of engine build.
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=config.task.trust_remote_code
        )
        use_chat_template = resolve_chat_template(tokenizer, config.task.chat_template)
        version = _version()
        key = engine_cache_key(config, folder, version=version, gpus=gpu_identity(len(devices)))
        build, build_shown = build_objects(config)
        runtime, runtime_shown = runtime_objects(config)
        built = build_or_load(config, folder, key, build=build, runtime=runtime, shown=build_shown)
        eos = eos_ids(folder, tokenizer)
        sampling = _sampling(config, tokenizer, eos, SamplingParams)
        n_params, n_non_embedding = count_params(folder)
        section = config.tensorrt or TensorRTConfig()
        requested = section.dtype if section.dtype not in (None, "auto") else None
        notes.append(
            f"engine {'loaded from the cache' if built.cache_hit else 'built and cached'}: "
            f"{built.engine_dir}"
        )
        notes.append(
            "peak device memory is not tracked: TensorRT-LLM allocates outside torch "
            "(the power trace records memory used)"
        )
        info = ModelInfo(
            n_params=n_params,
            n_non_embedding_params=n_non_embedding,
            dtype=engine_dtype(built.engine_dir, requested),
            device=",".join(devices),
            engine_version=version,
            engine_args={
                "llm": {**build_shown, **runtime_shown},
                "sampling_params": sampling,
                "engine_cache": {
                    "key": key,
                    "dir": str(built.engine_dir),
                    "hit": built.cache_hit,
                },
                "model_folder": str(folder),
                "chat_template": use_chat_template,
                "eos_token_ids": eos,
                "batching": "in-flight",
            },
            model_memory_mib=engine_mib(built.engine_dir),
            notes=tuple(notes),
        )
        return cls(
            config, built.llm, tokenizer, info, SamplingParams(**sampling), eos, use_chat_template
        )

    def prepare(self, prompts: Sequence[str]) -> PreparedPrompts:
        ids = self._prompt_ids(prompts)
        return PreparedPrompts(n_input_tokens=tuple(len(r) for r in ids), payload=_Prompts(ids))

    def generate(
        self, prepared: PreparedPrompts, *, on_progress: ProgressCallback | None = None
    ) -> GenerationOutput:
        try:
            records = asyncio.run(self._generate_all(prepared.payload.ids, on_progress))
        except (RuntimeError, ValueError) as err:
            raise EngineError(f"TensorRT-LLM generate failed: {type(err).__name__}: {err}") from err
        return GenerationOutput(
            requests=tuple(sorted(records, key=lambda r: r.index)),
            timing_definition=CONTINUOUS_BATCH_TIMING,
        )

    async def _generate_all(
        self, prompts: list[list[int]], on_progress: ProgressCallback | None
    ) -> list[RequestOutput]:
        done = [0, 0]  # requests, output tokens
        start = time.perf_counter()

        async def one(index: int, ids: list[int]) -> RequestOutput:
            first_s: float | None = None
            last: Any = None
            stream = self._llm.generate_async(ids, self._sampling_params, streaming=True)
            async for output in stream:
                last = output.outputs[0]
                if first_s is None and len(last.token_ids) > 0:
                    first_s = time.perf_counter()
            end_s = time.perf_counter()
            tokens = self._with_stop_token(last)
            n_out = len(tokens)
            done[0] += 1
            done[1] += n_out
            if on_progress is not None:
                on_progress(done[0], done[1])
            ttft_ms = None if first_s is None else (first_s - start) * 1000.0
            itl_ms = (
                (end_s - first_s) * 1000.0 / (n_out - 1)
                if first_s is not None and n_out > 1
                else None
            )
            return RequestOutput(
                index=index,
                n_input_tokens=len(ids),
                n_output_tokens=n_out,
                latency_ms=(end_s - start) * 1000.0,
                ttft_ms=ttft_ms,
                itl_ms=itl_ms,
                token_ids=tokens,
            )

        return list(await asyncio.gather(*(one(i, ids) for i, ids in enumerate(prompts))))

    def _with_stop_token(self, completion: Any) -> tuple[int, ...]:
        """Generated ids up to and including the end-of-sequence token that stopped them.

        TensorRT-LLM leaves the end token out of its output; the transformers engine counts
        it. Putting it back makes token counts and output ids comparable across engines.
        """
        if completion is None:
            return ()
        tokens = [int(t) for t in completion.token_ids]
        stop = getattr(completion, "stop_reason", None)
        if getattr(completion, "finish_reason", None) == "stop" and not isinstance(stop, str):
            end = stop if isinstance(stop, int) else self._end_id
            if end is not None and end in self._eos and (not tokens or tokens[-1] not in self._eos):
                tokens.append(end)
        return tuple(tokens)

    def close(self) -> None:
        llm, self._llm = self._llm, None
        shutdown = getattr(llm, "shutdown", None)
        if callable(shutdown):
            shutdown()


def _sampling(
    config: ExperimentConfig, tokenizer: Any, eos: list[int], sampling_params: Any
) -> dict[str, Any]:
    """``SamplingParams`` arguments: the first EOS ends a request, the rest stop it too, and
    padding falls back to the EOS id when the tokenizer has no pad token."""
    pad = tokenizer.pad_token_id
    if pad is None and eos:
        pad = eos[0]
    return sampling_kwargs(
        config,
        end_id=eos[0] if eos else None,
        pad_id=pad,
        stop_token_ids=eos[1:],
        seed_field=seed_field(sampling_params),
    )
