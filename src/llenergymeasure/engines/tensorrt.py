"""The TensorRT-LLM engine: build (or reuse) a TensorRT engine, then in-flight batching.

A TensorRT engine is compiled for one model, GPU model, precision, parallelism and
shape limits; building one takes minutes. Built engines are cached under the user
cache dir, keyed by a hash of every setting that changes the build, written to a
temporary folder and renamed under a file lock, so a crash or a concurrent run never
leaves a half-written engine behind.

Prompts are chat-templated, truncated and tokenised here with the model's Hugging Face
tokenizer, exactly as the transformers engine does (``engines/text.py``), and the
engine is given token ids: both engines then see the same input.

``tensorrt_llm`` is imported inside methods only. The engine needs an NVIDIA GPU of
compute capability 7.5 or newer (:meth:`TensorRTEngine.gpu_requirements`).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llenergymeasure.config.models import ExperimentConfig, TensorRTConfig
from llenergymeasure.config.paths import cache_root
from llenergymeasure.engines.base import (
    GenerationOutput,
    ModelInfo,
    PreparedPrompts,
    ProgressCallback,
    RequestOutput,
)
from llenergymeasure.engines.model_files import count_params, ensure_converted, eos_ids
from llenergymeasure.engines.requirements import GpuRequirement
from llenergymeasure.engines.resolve import ResolvedModel, converted_cache_dir
from llenergymeasure.engines.text import prompt_ids, resolve_chat_template
from llenergymeasure.errors import EngineError
from llenergymeasure.records.base import Availability

__all__ = [
    "CONTINUOUS_BATCH_TIMING",
    "ENGINE_COMPLETE_FILE",
    "TensorRTEngine",
    "TensorRTLoadedModel",
    "engine_cache_key",
    "sampling_kwargs",
]

_MIB = 2**20
# Turing: the oldest generation TensorRT-LLM supports.
MIN_COMPUTE_CAPABILITY = (7, 5)
_BF16_COMPUTE_CAPABILITY = (8, 0)  # Ampere
_FP8_COMPUTE_CAPABILITY = (8, 9)  # Ada and Hopper
_FP4_COMPUTE_CAPABILITY = (10, 0)  # Blackwell
# Written last into a built engine's folder: a folder without it is not an engine.
ENGINE_COMPLETE_FILE = "LLEM_ENGINE.json"

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


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # in sys.modules without a spec: imported, so present
        return name in sys.modules


class TensorRTEngine:
    """TensorRT-LLM's ``LLM`` API on NVIDIA GPUs, with engines cached by build settings."""

    name = "tensorrt"

    def probe(self) -> Availability:
        if not _installed("tensorrt_llm"):
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
            missing = [m for m in ("transformers", "gguf") if not _installed(m)]
            if missing:
                problems.append(
                    f"TensorRT-LLM reads Hugging Face folders; converting the .gguf model once "
                    f"needs {' and '.join(missing)}: pip install {' '.join(missing)}"
                )
        if not _installed("transformers"):
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


def _hf_folder(model: ResolvedModel) -> tuple[Path, list[str]]:
    """The Hugging Face folder TensorRT-LLM builds from (a GGUF model is converted once)."""
    if not model.is_gguf:
        return model.path, []
    folder = ensure_converted(model)
    return folder, [f"weights dequantised from {model.path.name} to a safetensors cache"]


def _weight_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))


def _model_fingerprint(folder: Path) -> dict[str, Any]:
    """What identifies the weights: the config's bytes and each weight file's size and time."""
    config = folder / "config.json"
    return {
        "folder": str(folder),
        "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest()
        if config.is_file()
        else None,
        "weights": [
            [f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in _weight_files(folder)
        ],
    }


def _gpu_identity(n_gpus: int) -> list[str]:
    """GPU model and compute capability: a TensorRT engine runs only on the GPU it was built for."""
    if not _installed("torch"):
        return ["unknown"]
    import torch

    if not torch.cuda.is_available():
        return ["no CUDA device"]
    found = []
    for i in range(min(n_gpus, torch.cuda.device_count())):
        major, minor = torch.cuda.get_device_capability(i)
        found.append(f"{torch.cuda.get_device_name(i)} sm_{major}{minor}")
    return found


def engine_cache_key(
    config: ExperimentConfig, folder: Path, *, version: str | None, gpus: Sequence[str]
) -> str:
    """First 16 hex of SHA-256 over every setting that changes a built engine.

    Runtime-only settings (KV cache memory fraction, block reuse, decoding) are left out:
    they apply when an engine is loaded, so changing them reuses the same engine.
    """
    section = config.tensorrt or TensorRTConfig()
    task = config.task
    settings = {
        "tensorrt_llm": version,
        "model": _model_fingerprint(folder),
        "gpus": list(gpus),
        "dtype": section.dtype or "auto",
        "tensor_parallel_size": section.tensor_parallel_size or 1,
        "max_batch_size": section.max_batch_size,
        "max_input_len": task.max_input_tokens,
        "max_seq_len": task.max_input_tokens + task.max_output_tokens,
        "quant_config": section.quant_config.model_dump(),
        "trust_remote_code": task.trust_remote_code,
    }
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _engine_dir(key: str, folder: Path) -> Path:
    return cache_root() / "tensorrt-engines" / f"{folder.name[:40]}-{key}"


def _is_complete(engine_dir: Path) -> bool:
    return (engine_dir / ENGINE_COMPLETE_FILE).is_file()


# ------------------------------------------------------------------ arguments


def _llm_class() -> Any:
    """The TensorRT-engine ``LLM``: its own module where the default ``LLM`` is PyTorch-based."""
    try:
        from tensorrt_llm._tensorrt_engine import LLM
    except ImportError:
        from tensorrt_llm.llmapi import LLM
    return LLM


def _build_objects(config: ExperimentConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """``LLM`` keyword arguments that shape the build, and the same as plain data."""
    from tensorrt_llm.llmapi import BuildConfig, QuantAlgo, QuantConfig

    section = config.tensorrt or TensorRTConfig()
    task = config.task
    build: dict[str, Any] = {
        "max_input_len": task.max_input_tokens,
        "max_seq_len": task.max_input_tokens + task.max_output_tokens,
    }
    if section.max_batch_size is not None:
        build["max_batch_size"] = section.max_batch_size
    build_config = BuildConfig(**build)
    # BuildConfig fills in its own defaults (max_batch_size among them): record what it holds.
    shown_build = {
        name: getattr(build_config, name, build.get(name))
        for name in ("max_batch_size", "max_input_len", "max_seq_len", "max_num_tokens")
    }
    kwargs: dict[str, Any] = {
        "dtype": section.dtype or "auto",
        "tensor_parallel_size": section.tensor_parallel_size or 1,
        "build_config": build_config,
    }
    shown: dict[str, Any] = {
        "dtype": kwargs["dtype"],
        "tensor_parallel_size": kwargs["tensor_parallel_size"],
        "build_config": shown_build,
    }
    quant = section.quant_config.model_dump(exclude_none=True)
    if quant:
        kwargs["quant_config"] = QuantConfig(
            **{name: getattr(QuantAlgo, value) for name, value in quant.items()}
        )
        shown["quant_config"] = quant
    return kwargs, shown


def _runtime_objects(config: ExperimentConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """``LLM`` keyword arguments applied at load time (the KV cache), and as plain data."""
    section = config.tensorrt or TensorRTConfig()
    kv = section.kv_cache_config.model_dump(exclude_none=True)
    if not kv:
        return {}, {}
    from tensorrt_llm.llmapi import KvCacheConfig

    return {"kv_cache_config": KvCacheConfig(**kv)}, {"kv_cache_config": kv}


def sampling_kwargs(
    config: ExperimentConfig,
    *,
    end_id: int | None,
    pad_id: int | None,
    stop_token_ids: Sequence[int] = (),
    seed_field: str = "seed",
) -> dict[str, Any]:
    """``SamplingParams`` arguments from the task and the ``tensorrt.sampling`` section.

    ``max_tokens`` is ``task.max_output_tokens`` (synthetic workloads: exactly
    ``output_len``); None fields keep TensorRT-LLM's defaults. A temperature of 0 means
    greedy decoding, which TensorRT-LLM spells ``top_k=1`` (its temperature must be > 0).
    """
    task, section = config.task, config.tensorrt or TensorRTConfig()
    kwargs: dict[str, Any] = {"max_tokens": task.max_output_tokens}
    sampling = section.sampling.model_dump(exclude_none=True)
    if task.dataset.output_len is not None:
        kwargs["max_tokens"] = kwargs["min_tokens"] = task.dataset.output_len
        sampling.pop("min_tokens", None)
    if sampling.get("temperature") == 0.0:
        del sampling["temperature"]
        sampling.pop("top_p", None)
        sampling["top_k"] = 1
    kwargs.update(sampling)
    kwargs[seed_field] = task.random_seed
    if end_id is not None:
        kwargs["end_id"] = end_id
    if pad_id is not None:
        kwargs["pad_id"] = pad_id
    if stop_token_ids:
        kwargs["stop_token_ids"] = list(stop_token_ids)
    return kwargs


def _seed_field(sampling_params: Any) -> str:
    """``seed`` in current TensorRT-LLM, ``random_seed`` in older releases."""
    try:
        names = inspect.signature(sampling_params).parameters
    except (TypeError, ValueError):
        return "seed"
    return "seed" if "seed" in names or "random_seed" not in names else "random_seed"


def _engine_dtype(engine_dir: Path, fallback: str | None) -> str | None:
    """The precision the built engine holds, from its own config.json."""
    config = engine_dir / "config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        dtype = (data.get("pretrained_config") or {}).get("dtype") or data.get("dtype")
        if dtype:
            return str(dtype)
    return fallback


def _engine_mib(engine_dir: Path) -> float | None:
    files = list(engine_dir.glob("*.engine"))
    return sum(f.stat().st_size for f in files) / _MIB if files else None


# ------------------------------------------------------------------ the loaded model


@dataclass(frozen=True)
class _Built:
    llm: Any
    engine_dir: Path
    cache_hit: bool


def _build_or_load(
    config: ExperimentConfig,
    folder: Path,
    key: str,
    *,
    build: dict[str, Any],
    runtime: dict[str, Any],
    shown: dict[str, Any],
) -> _Built:
    """A cached engine for ``key``, or a new one built, saved and renamed into the cache.

    ``build`` and ``runtime`` are ``LLM`` arguments; ``shown`` is ``build`` as plain data,
    kept in the engine folder.
    """
    from filelock import FileLock

    llm_class = _llm_class()
    target = _engine_dir(key, folder)
    common = {"tokenizer": str(folder), "trust_remote_code": config.task.trust_remote_code}
    if not _is_complete(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if not _is_complete(target):
                llm = llm_class(model=str(folder), **common, **build, **runtime)
                tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
                shutil.rmtree(tmp, ignore_errors=True)
                llm.save(str(tmp))
                (tmp / ENGINE_COMPLETE_FILE).write_text(
                    json.dumps({"key": key, "model": str(folder), **shown}, default=str) + "\n",
                    encoding="utf-8",
                )
                shutil.rmtree(target, ignore_errors=True)  # an unfinished folder, never an engine
                tmp.replace(target)
                return _Built(llm, target, cache_hit=False)
    section = config.tensorrt or TensorRTConfig()
    llm = llm_class(
        model=str(target),
        tensor_parallel_size=section.tensor_parallel_size or 1,
        **common,
        **runtime,
    )
    return _Built(llm, target, cache_hit=True)


@dataclass(frozen=True)
class _Prompts:
    ids: list[list[int]]


class TensorRTLoadedModel:
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
        self._config = config
        self._llm = llm
        self._tokenizer = tokenizer
        self._sampling_params = sampling_params
        self._eos = set(eos_ids)
        self._end_id = eos_ids[0] if eos_ids else None
        self.info = info
        self._use_chat_template = use_chat_template

    @classmethod
    def load(
        cls, config: ExperimentConfig, model: ResolvedModel, devices: list[str]
    ) -> TensorRTLoadedModel:
        from tensorrt_llm.llmapi import SamplingParams
        from transformers import AutoTokenizer

        folder, notes = _hf_folder(model)
        # The tokenizer first: a config it cannot serve fails before minutes of engine build.
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=config.task.trust_remote_code
        )
        use_chat_template = resolve_chat_template(tokenizer, config.task.chat_template)
        version = _version()
        key = engine_cache_key(config, folder, version=version, gpus=_gpu_identity(len(devices)))
        build, build_shown = _build_objects(config)
        runtime, runtime_shown = _runtime_objects(config)
        built = _build_or_load(config, folder, key, build=build, runtime=runtime, shown=build_shown)
        eos = eos_ids(folder, tokenizer)
        pad = tokenizer.pad_token_id
        if pad is None and eos:
            pad = eos[0]
        sampling = sampling_kwargs(
            config,
            end_id=eos[0] if eos else None,
            pad_id=pad,
            stop_token_ids=eos[1:],
            seed_field=_seed_field(SamplingParams),
        )
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
            dtype=_engine_dtype(built.engine_dir, requested),
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
            model_memory_mib=_engine_mib(built.engine_dir),
            notes=tuple(notes),
        )
        return cls(
            config, built.llm, tokenizer, info, SamplingParams(**sampling), eos, use_chat_template
        )

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids))

    def prepare(self, prompts: Sequence[str]) -> PreparedPrompts:
        limit = self._config.task.max_input_tokens
        ids = prompt_ids(
            self._tokenizer,
            prompts,
            max_input_tokens=limit,
            use_chat_template=self._use_chat_template,
        )
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
        done = [0]
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
            done[0] += 1
            if on_progress is not None:
                on_progress(done[0])
            n_out = len(tokens)
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

    def synchronize(self) -> None:
        # generate returns once every request has finished on the device.
        return None

    def reset_peak_memory(self) -> None:
        return None

    def peak_device_memory_mib(self) -> float | None:
        return None

    def close(self) -> None:
        llm, self._llm = self._llm, None
        shutdown = getattr(llm, "shutdown", None)
        if callable(shutdown):
            shutdown()
