"""Building TensorRT engines, and the cache that keeps them.

A TensorRT engine is compiled for one model, GPU model, precision, parallelism and shape
limits; building one takes minutes. Built engines are cached under the user cache dir,
keyed by a hash of every setting that changes the build, written to a temporary folder and
renamed under a file lock, so a crash or a concurrent run never leaves a half-written
engine behind. ``tensorrt_llm`` is imported inside functions only.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llenergymeasure.config.engines import TensorRTConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.paths import cache_root
from llenergymeasure.engines.model_files import importable

__all__ = [
    "ENGINE_COMPLETE_FILE",
    "Built",
    "build_objects",
    "build_or_load",
    "engine_cache_key",
    "engine_dtype",
    "engine_mib",
    "gpu_identity",
    "runtime_objects",
    "sampling_kwargs",
    "seed_field",
]


_MIB = 2**20


# Written last into a built engine's folder: a folder without it is not an engine.
ENGINE_COMPLETE_FILE = "LLEM_ENGINE.json"


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


def gpu_identity(n_gpus: int) -> list[str]:
    """GPU model and compute capability: a TensorRT engine runs only on the GPU it was built for."""
    if not importable("torch"):
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


def _llm_class() -> Any:
    """The TensorRT-engine ``LLM``: its own module where the default ``LLM`` is PyTorch-based."""
    try:
        from tensorrt_llm._tensorrt_engine import LLM
    except ImportError:
        from tensorrt_llm.llmapi import LLM
    return LLM


def build_objects(config: ExperimentConfig) -> tuple[dict[str, Any], dict[str, Any]]:
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


def runtime_objects(config: ExperimentConfig) -> tuple[dict[str, Any], dict[str, Any]]:
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


def seed_field(sampling_params: Any) -> str:
    """``seed`` in current TensorRT-LLM, ``random_seed`` in older releases."""
    try:
        names = inspect.signature(sampling_params).parameters
    except (TypeError, ValueError):
        return "seed"
    return "seed" if "seed" in names or "random_seed" not in names else "random_seed"


def engine_dtype(engine_dir: Path, fallback: str | None) -> str | None:
    """The precision the built engine holds, from its own config.json."""
    config = engine_dir / "config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        dtype = (data.get("pretrained_config") or {}).get("dtype") or data.get("dtype")
        if dtype:
            return str(dtype)
    return fallback


def engine_mib(engine_dir: Path) -> float | None:
    files = list(engine_dir.glob("*.engine"))
    return sum(f.stat().st_size for f in files) / _MIB if files else None


@dataclass(frozen=True)
class Built:
    llm: Any
    engine_dir: Path
    cache_hit: bool


def build_or_load(
    config: ExperimentConfig,
    folder: Path,
    key: str,
    *,
    build: dict[str, Any],
    runtime: dict[str, Any],
    shown: dict[str, Any],
) -> Built:
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
                return Built(llm, target, cache_hit=False)
    section = config.tensorrt or TensorRTConfig()
    llm = llm_class(
        model=str(target),
        tensor_parallel_size=section.tensor_parallel_size or 1,
        **common,
        **runtime,
    )
    return Built(llm, target, cache_hit=True)
