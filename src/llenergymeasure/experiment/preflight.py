"""Step 1: check everything that can be checked before loading, then fail once with all problems."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil

from llenergymeasure.config.loading import UserConfig, carbon_intensity
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.datasets import Prompt, load_prompts
from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.nvml_scope import gpu_indices_in_scope
from llenergymeasure.energy.process import ProcessTelemetry
from llenergymeasure.energy.registry import select_sampler, share_nvml_polling
from llenergymeasure.energy.telemetry import TelemetrySource
from llenergymeasure.engines.base import Engine
from llenergymeasure.engines.context import context_length
from llenergymeasure.engines.registry import Runner, find_runner, get_engine
from llenergymeasure.engines.requirements import GpuRequirement, NeedsGpu
from llenergymeasure.engines.resolve import ResolvedModel, converted_cache_dir, resolve_model
from llenergymeasure.errors import LlemError, PreflightError
from llenergymeasure.experiment.gpu_checks import (
    MeasuredScope,
    device_problems,
    measured_devices,
    scope_findings,
    scope_gpus,
)
from llenergymeasure.experiment.options import Overrides
from llenergymeasure.experiment.problems import Problems
from llenergymeasure.system.cpu import cpu_model, resolve_cpu_tdp, visible_cpu_count
from llenergymeasure.system.gpus import GpuInfo, list_gpus

__all__ = [
    "Plan",
    "choose_sampler",
    "estimate_model_memory_mib",
    "gpu_requirement_problems",
    "run_preflight",
]

_MIB = 2**20
_BYTES_PER_PARAM = {"float32": 4, "float16": 2, "bfloat16": 2}
# GGUF files here hold ~4.5-bit weights that are dequantised to float32 on load.
_GGUF_EXPANSION = 8


_T = TypeVar("_T")


@dataclass(frozen=True)
class Plan(MeasuredScope):
    """What pre-flight found: everything the later steps need, already checked.

    Besides the measured scope: the engine and model, the prompts, and ``engine_devices``,
    where the engine itself runs.
    """

    engine: Engine
    model: ResolvedModel
    prompts: list[Prompt] | None  # None for synthetic prompts, built once the tokenizer exists
    memory_estimate_mib: float | None
    runner: Runner | None = None  # the interpreter that runs the engine, when not this one
    engine_devices: list[str] = field(default_factory=list)


def run_preflight(
    config: ExperimentConfig,
    *,
    user: UserConfig,
    strict: bool = False,
    overrides: Overrides = Overrides(),
) -> Plan:
    """Check engine, model, dataset, devices, memory and energy sampler; raise once for all.

    ``strict`` turns the warnings about a shared GPU or too little GPU memory into
    problems. ``overrides`` replace the engine, sampler, telemetry or pynvml (doubles in
    tests).
    """
    found = Problems()
    engine, runner = _engine(config, overrides.engine, user, found)
    model = found.attempt(lambda: resolve_model(config.task.model))
    prompts = None
    if config.task.dataset.source != "synthetic":
        prompts = found.attempt(
            lambda: load_prompts(config.task.dataset, seed=config.task.random_seed)
        )
    engine_devices = engine.devices(config) if engine is not None else ["cpu"]
    found.messages.extend(device_problems(config))
    hosts = _hosts(config, engine, engine_devices, overrides.nvml)
    devices = measured_devices(config, engine_devices, hosts.gpus, os.environ)
    scope = scope_gpus(devices, hosts.gpus, os.environ)
    memory_mib = _engine_checks(config, engine, model, runner, engine_devices, hosts, found)
    chosen = found.attempt(lambda: choose_sampler(config, user, overrides, devices))
    sampler, reason, sources = chosen if chosen is not None else (None, "", ())
    found.attempt(lambda: carbon_intensity(config))
    warnings, strict_problems = scope_findings(
        scope, memory_mib if _cuda(engine_devices) else None, strict=strict
    )
    found.messages.extend(strict_problems)
    if found.messages or engine is None or model is None or sampler is None:
        raise PreflightError(found.messages, hint=found.hints[0] if found.hints else None)
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
        scope_gpus=tuple(scope),
        driver_version=hosts.driver,
        engine_devices=list(engine_devices),
    )


@dataclass(frozen=True)
class _Gpus:
    gpus: list[GpuInfo]
    driver: str | None
    reason: str | None


def _cuda(devices: Sequence[str]) -> bool:
    return any(d.strip().lower().startswith("cuda") for d in devices)


def _hosts(
    config: ExperimentConfig, engine: Engine | None, engine_devices: Sequence[str], nvml: object
) -> _Gpus:
    """The host's GPUs, read only when the run measures or needs one."""
    wanted = _cuda(engine_devices) or _cuda(config.measurement.devices or ())
    if not (wanted or isinstance(engine, NeedsGpu)):
        return _Gpus([], None, None)
    gpus, driver, reason = list_gpus(nvml)
    return _Gpus(gpus, driver, reason)


def _engine(
    config: ExperimentConfig, engine: Engine | None, user: UserConfig, found: Problems
) -> tuple[Engine | None, Runner | None]:
    """The engine, and the runner of another environment when it is not importable here."""
    if engine is None:
        engine = found.attempt(lambda: get_engine(config.engine))
    runner: Runner | None = None
    if engine is not None:
        availability = engine.probe()
        if not availability.available:
            # Another environment's interpreter may run it; that run does the engine's checks.
            runner = found.attempt(lambda: find_runner(config.engine, user.runners))
            if runner is None:
                found.messages.append(
                    f"engine `{config.engine}` is unavailable: {availability.reason}"
                )
    return engine, runner


def _engine_checks(
    config: ExperimentConfig,
    engine: Engine | None,
    model: ResolvedModel | None,
    runner: Runner | None,
    engine_devices: Sequence[str],
    hosts: _Gpus,
    found: Problems,
) -> float | None:
    """The engine's GPU requirements, context length and memory; the memory estimate."""
    if isinstance(engine, NeedsGpu):
        found.messages.extend(
            gpu_requirement_problems(
                engine.gpu_requirements(config),
                hosts.gpus,
                hosts.reason,
                engine_devices,
                os.environ,
            )
        )
    if model is not None:
        found.messages.extend(_context_problems(config, model))
    if engine is None or model is None:
        return None
    if runner is None:
        found.messages.extend(engine.preflight(config, model))
    memory_mib = estimate_model_memory_mib(model, config)
    found.messages.extend(_memory_problems(memory_mib, list(engine_devices)))
    return memory_mib


def choose_sampler(
    config: ExperimentConfig, user: UserConfig, overrides: Overrides, devices: Sequence[str]
) -> tuple[EnergySampler, str, tuple[TelemetrySource, ...]]:
    """The energy sampler (given, or chosen for the devices), why, and its telemetry."""
    given, telemetry = overrides.sampler, overrides.telemetry
    if given is not None:
        sources = tuple(telemetry) if telemetry is not None else (ProcessTelemetry(),)
        return given, f"given explicitly ({type(given).__name__})", sources
    tdp = resolve_cpu_tdp(cpu_model(), user.cpu_tdp_w, visible_cpu_count())
    selection = select_sampler(
        config.measurement.energy_sampler,
        watts_per_thread=tdp.watts_per_thread,
        tdp_source=tdp.source,
        devices=devices,
        nvml=overrides.nvml,
    )
    sources = tuple(telemetry) if telemetry is not None else selection.sources
    share_nvml_polling(selection.sampler, sources)  # one thread polls NVML, the trace's
    return selection.sampler, selection.reason, sources


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
