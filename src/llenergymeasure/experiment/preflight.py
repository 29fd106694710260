"""Step 1: check everything that can be checked before loading, then fail once with all problems."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil

from llenergymeasure.config.loading import UserConfig, carbon_intensity
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.datasets import Prompt, load_prompts
from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.nvml import gpu_indices_in_scope
from llenergymeasure.energy.process import ProcessTelemetry
from llenergymeasure.energy.registry import select_sampler
from llenergymeasure.energy.telemetry import TelemetrySource
from llenergymeasure.engines.base import Engine
from llenergymeasure.engines.context import context_length
from llenergymeasure.engines.registry import Runner, find_runner, get_engine
from llenergymeasure.engines.requirements import GpuRequirement, NeedsGpu
from llenergymeasure.engines.resolve import ResolvedModel, converted_cache_dir, resolve_model
from llenergymeasure.errors import LlemError, PreflightError
from llenergymeasure.system.cpu import cpu_model, resolve_cpu_tdp, visible_cpu_count
from llenergymeasure.system.gpus import GpuInfo, gpu_warnings, list_gpus

__all__ = ["Plan", "estimate_model_memory_mib", "gpu_requirement_problems", "run_preflight"]

_MIB = 2**20
_BYTES_PER_PARAM = {"float32": 4, "float16": 2, "bfloat16": 2}
# GGUF files here hold ~4.5-bit weights that are dequantised to float32 on load.
_GGUF_EXPANSION = 8


_T = TypeVar("_T")


class _Problems:
    """Collects every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.hints: list[str] = []

    def attempt(self, check: Callable[[], _T]) -> _T | None:
        try:
            return check()
        except LlemError as err:
            self.messages.append(err.message)
            if err.hint:
                self.hints.append(err.hint)
            return None


@dataclass(frozen=True)
class Plan:
    """What pre-flight found: everything the later steps need, already checked."""

    config: ExperimentConfig
    engine: Engine
    model: ResolvedModel
    sampler: EnergySampler
    sampler_reason: str
    sources: tuple[TelemetrySource, ...]
    devices: list[str]
    prompts: list[Prompt] | None  # None for synthetic prompts, built once the tokenizer exists
    memory_estimate_mib: float | None
    warnings: list[str] = field(default_factory=list)
    runner: Runner | None = None  # the interpreter that runs the engine, when not this one

    @property
    def on_gpu(self) -> bool:
        return any(d.startswith("cuda") for d in self.devices)


def run_preflight(
    config: ExperimentConfig,
    *,
    user: UserConfig,
    engine: Engine | None = None,
    sampler: EnergySampler | None = None,
    telemetry: Sequence[TelemetrySource] | None = None,
) -> Plan:
    """Check engine, model, dataset, device, memory and energy sampler; raise once for all."""
    found = _Problems()
    problems, attempt = found.messages, found.attempt

    if engine is None:
        engine = attempt(lambda: get_engine(config.engine))
    runner: Runner | None = None
    if engine is not None:
        availability = engine.probe()
        if not availability.available:
            # Another environment's interpreter may run it; that run does the engine's checks.
            runner = attempt(lambda: find_runner(config.engine, user.runners))
            if runner is None:
                problems.append(f"engine `{config.engine}` is unavailable: {availability.reason}")
    model = attempt(lambda: resolve_model(config.task.model))
    prompts = None
    if config.task.dataset.source != "synthetic":
        prompts = attempt(lambda: load_prompts(config.task.dataset, seed=config.task.random_seed))
    devices = engine.devices(config) if engine is not None else ["cpu"]
    on_gpu = any(d.startswith("cuda") for d in devices)
    gpus, _, no_gpu_reason = (
        list_gpus() if on_gpu or isinstance(engine, NeedsGpu) else ([], None, None)
    )
    memory_mib = None
    if isinstance(engine, NeedsGpu):
        problems.extend(
            gpu_requirement_problems(
                engine.gpu_requirements(config), gpus, no_gpu_reason, devices, os.environ
            )
        )
    if model is not None:
        problems.extend(_context_problems(config, model))
    if engine is not None and model is not None:
        if runner is None:
            problems.extend(engine.preflight(config, model))
        memory_mib = estimate_model_memory_mib(model, config)
        problems.extend(_memory_problems(memory_mib, devices))
    reason = f"given explicitly ({type(sampler).__name__})"
    sources: tuple[TelemetrySource, ...] = tuple(telemetry) if telemetry is not None else ()
    if sampler is not None and telemetry is None:
        sources = (ProcessTelemetry(),)
    if sampler is None:
        tdp = resolve_cpu_tdp(cpu_model(), user.cpu_tdp_w, visible_cpu_count())
        chosen = attempt(
            lambda: select_sampler(
                config.measurement.energy_sampler,
                watts_per_thread=tdp.watts_per_thread,
                tdp_source=tdp.source,
                devices=devices,
            ),
        )
        if chosen is not None:
            sampler, reason = chosen.sampler, chosen.reason
            sources = chosen.sources if telemetry is None else sources
    attempt(lambda: carbon_intensity(config))
    if problems or engine is None or model is None or sampler is None:
        raise PreflightError(problems, hint=found.hints[0] if found.hints else None)
    warnings = gpu_warnings(gpus) if on_gpu else []
    return Plan(
        config=config,
        engine=engine,
        model=model,
        sampler=sampler,
        sampler_reason=reason,
        sources=sources,
        devices=devices,
        prompts=prompts,
        memory_estimate_mib=memory_mib,
        warnings=warnings,
        runner=runner,
    )


def gpu_requirement_problems(
    requirements: Sequence[GpuRequirement],
    gpus: Sequence[GpuInfo],
    no_gpu_reason: str | None,
    devices: Sequence[str],
    environ: Mapping[str, str],
) -> list[str]:
    """Why the GPUs this process sees cannot serve ``requirements`` (empty when they can).

    A GPU whose compute capability NVML does not report is given the benefit of the doubt.
    """
    if not requirements:
        return []
    engine_needs = requirements[0]
    wanted = f"compute capability {_capability(engine_needs.min_compute_capability)} or newer"
    if not gpus:
        reason = no_gpu_reason or "NVML sees no GPU"
        return [f"{engine_needs.why} needs an NVIDIA GPU of {wanted}; none found ({reason})"]
    uuids = [""] * (max(g.index for g in gpus) + 1)
    for info in gpus:
        uuids[info.index] = info.uuid
    n_gpus = max(r.n_gpus for r in requirements)
    try:
        in_scope = gpu_indices_in_scope(list(devices)[:n_gpus], environ, uuids)
    except LlemError as err:
        return [f"{engine_needs.why} needs {n_gpus} NVIDIA GPU(s) of {wanted}: {err.message}"]
    by_index = {g.index: g for g in gpus}
    found = []
    for requirement in requirements:
        minimum = requirement.min_compute_capability
        for index in in_scope:
            gpu = by_index.get(index)
            capability = None if gpu is None else gpu.compute_capability
            if gpu is not None and capability is not None and capability < minimum:
                found.append(
                    f"{requirement.why} needs compute capability {_capability(minimum)} or "
                    f"newer; {gpu.device} ({gpu.name}) has {_capability(capability)}"
                )
    return found


def _capability(value: tuple[int, int]) -> str:
    return f"{value[0]}.{value[1]}"


def estimate_model_memory_mib(model: ResolvedModel, config: ExperimentConfig) -> float | None:
    """Rough weight memory from the files on disk (an upper-end guess for GGUF)."""
    if model.is_gguf:
        converted = converted_cache_dir(model)
        if converted.is_dir():
            return _weights_bytes(list(converted.glob("*.safetensors"))) / _MIB
        return model.path.stat().st_size * _GGUF_EXPANSION / _MIB
    files = list(model.path.glob("*.safetensors")) or list(model.path.glob("*.bin"))
    if not files:
        return None
    size = _weights_bytes(files)
    dtype = config.transformers.dtype if config.transformers else None
    # Files on disk are usually 16-bit; float32 doubles them.
    return size * (2 if dtype == "float32" else 1) / _MIB


def _weights_bytes(files: list[Path]) -> float:
    return float(sum(f.stat().st_size for f in files))


def _context_problems(config: ExperimentConfig, model: ResolvedModel) -> list[str]:
    """A prompt of ``max_input_tokens`` plus ``max_output_tokens`` must fit the model's context."""
    limit = context_length(model)
    task = config.task
    needed = task.max_input_tokens + task.max_output_tokens
    if limit is None or needed <= limit:
        return []
    return [
        f"task.max_input_tokens + task.max_output_tokens = {task.max_input_tokens:,} + "
        f"{task.max_output_tokens:,} = {needed:,} tokens, beyond the context length of "
        f"`{task.model}` ({limit:,} tokens); lower one of them"
    ]


def _memory_problems(memory_mib: float | None, devices: list[str]) -> list[str]:
    if memory_mib is None or any(d.startswith("cuda") for d in devices):
        return []  # device memory is checked by the engine when it loads
    available_mib = psutil.virtual_memory().available / _MIB
    if memory_mib > available_mib:
        return [
            f"the model needs about {memory_mib:,.0f} MiB but only {available_mib:,.0f} MiB "
            "of host memory is available"
        ]
    return []
