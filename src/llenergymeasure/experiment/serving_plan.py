"""Pre-flight of a serving experiment: everything checked before a server starts.

Like the offline pre-flight, every problem is collected and reported at once. It finds
the interpreter that runs the server (the vLLM environment), the model, the port, or
the endpoint and the model it serves; the prompts; the arrival schedule; and the energy
sampler, whose CPU estimate is pointed at the server's processes (the load generator's
own CPU time is not the server's energy).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import psutil

from llenergymeasure.config.loading import UserConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.serving import ServingConfig
from llenergymeasure.datasets import Prompt, load_prompts
from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.composite import CompositeSampler
from llenergymeasure.energy.estimate import EstimateSampler, NoEnergySampler, process_cpu_time_s
from llenergymeasure.energy.telemetry import TelemetrySource
from llenergymeasure.engines.registry import find_runner, get_engine
from llenergymeasure.engines.resolve import ResolvedModel, resolve_model
from llenergymeasure.errors import LlemError, PreflightError
from llenergymeasure.experiment.gpu_checks import (
    MeasuredScope,
    scope_findings,
    scope_gpus,
)
from llenergymeasure.experiment.options import Overrides
from llenergymeasure.experiment.preflight import choose_sampler, estimate_model_memory_mib
from llenergymeasure.experiment.problems import Problems
from llenergymeasure.records.result import MeasurementWarning
from llenergymeasure.serving.arrivals import Schedule, arrival_schedule
from llenergymeasure.serving.client import check_endpoint, new_client, run_sync
from llenergymeasure.serving.server import check_port_free, listening_pid
from llenergymeasure.system.gpus import GpuInfo, list_gpus

__all__ = ["ServerProcess", "ServingPlan", "plan_serving"]

_T = TypeVar("_T")


@dataclass
class ServerProcess:
    """The server's process id, once known: the CPU estimate reads its tree's CPU time."""

    pid: int | None = None

    def cpu_time_s(self) -> float:
        """CPU seconds of the server's process tree (0 before it is known)."""
        return 0.0 if self.pid is None else process_cpu_time_s(self.pid)


@dataclass(frozen=True)
class ServingPlan(MeasuredScope):
    """What pre-flight found for a serving experiment, besides the measured scope."""

    serving: ServingConfig
    model: ResolvedModel | None  # the model on this machine (always, for a launch)
    model_name: str  # the name the requests carry
    runner_python: Path | None  # the interpreter that runs the launched server
    port: int | None  # the launch port (None: a free one at launch)
    prompts: list[Prompt]
    schedule: Schedule | None  # None: closed loop
    seed: int
    min_window_s: float
    server_process: ServerProcess


# Alike experiment/preflight.py:run_preflight, kept apart: one calling convention, other checks
def plan_serving(
    config: ExperimentConfig,
    *,
    user: UserConfig,
    strict: bool = False,
    overrides: Overrides = Overrides(),
) -> ServingPlan:
    """Check the server, model, prompts, schedule, GPUs and energy sampler; raise once for all.

    ``strict`` turns the warnings about a shared GPU or too little GPU memory into
    problems. ``overrides`` replace the sampler, telemetry or pynvml (doubles in tests);
    the server is never replaced.
    """
    assert config.serving is not None, "a serving config has a serving section"
    serving = config.serving
    found = Problems()
    attempt = found.attempt
    model, runner, model_name = _server(config, serving, user, found)
    prompts = attempt(lambda: load_prompts(config.task.dataset, seed=config.task.random_seed))
    devices = _devices(config)
    on_gpu = any(d.startswith("cuda") for d in devices)
    min_window_s = config.measurement.min_window_for(on_gpu=on_gpu)
    seed = serving.seed if serving.seed is not None else config.task.random_seed
    schedule = attempt(lambda: _schedule(serving, seed))
    found.messages.extend(_period_problems(serving, schedule, min_window_s))
    server_process = ServerProcess()
    gpus = _gpus(config, devices, model, strict, overrides.nvml)
    chosen = attempt(lambda: _sampler(config, user, devices, overrides, server_process))
    if found.messages or gpus.problems or chosen is None or prompts is None:
        found.messages.extend(gpus.problems)
        raise found.error("no energy sampler")
    picked, reason, sources = chosen
    return ServingPlan(
        config=config,
        serving=serving,
        model=model,
        model_name=model_name,
        runner_python=runner,
        port=serving.launch.port,
        devices=devices,
        sampler=picked,
        sampler_reason=reason,
        sources=sources,
        prompts=prompts,
        schedule=schedule,
        seed=seed,
        min_window_s=min_window_s,
        server_process=server_process,
        warnings=gpus.warnings,
        scope_gpus=gpus.scope,
        driver_version=gpus.driver,
    )


def _server(
    config: ExperimentConfig, serving: ServingConfig, user: UserConfig, found: Problems
) -> tuple[ResolvedModel | None, Path | None, str]:
    """The model here, the interpreter of a launched server, the model the requests name."""
    attempt = found.attempt
    launch = serving.server == "launch"
    model = attempt(lambda: resolve_model(config.task.model)) if launch else _local_model(config)
    runner = attempt(lambda: _server_python(config, user)) if launch else None
    if launch and serving.launch.port is not None:
        attempt(lambda: check_port_free(serving.launch.port or 0))
    model_name = config.task.model
    if not launch:
        model_name = attempt(lambda: _served_model(config, serving)) or model_name
        # its tokenizer counts tokens only when the server serves that very model
        model = model if model_name == config.task.model else None
    return model, runner, model_name


@dataclass(frozen=True)
class _GpuScope:
    scope: tuple[GpuInfo, ...] = ()
    driver: str | None = None
    warnings: list[MeasurementWarning] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _gpus(
    config: ExperimentConfig,
    devices: list[str],
    model: ResolvedModel | None,
    strict: bool,
    nvml: object | None,
) -> _GpuScope:
    """The GPUs in scope, their set-up warnings, and whether other work shares them.

    A launched server starts after this check, so every process on the GPUs is another's
    and the model must fit their free memory. An endpoint's server is already there: its
    process tree is the work measured, and its model is already loaded.
    """
    if not any(d.startswith("cuda") for d in devices):
        return _GpuScope()
    listed, driver, _ = list_gpus(nvml)
    scope = scope_gpus(devices, listed, os.environ)
    assert config.serving is not None
    launch = config.serving.server == "launch"
    memory_mib = estimate_model_memory_mib(model, config) if launch and model else None
    ours = {os.getpid()} | (set() if launch else _endpoint_processes(config.serving))
    warnings, problems = scope_findings(scope, memory_mib, strict=strict, ours=ours)
    return _GpuScope(tuple(scope), driver, warnings, problems)


def _endpoint_processes(serving: ServingConfig) -> set[int]:
    """The endpoint's server on this host and its children (empty when it is elsewhere)."""
    url = urlsplit(serving.endpoint or "")
    pid = listening_pid(url.hostname or "", url.port or 80)
    if pid is None:
        return set()
    try:
        return {pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))}
    except psutil.Error:
        return {pid}


def _local_model(config: ExperimentConfig) -> ResolvedModel | None:
    """An endpoint's model on this machine, when it is here (for its tokenizer and size)."""
    try:
        return resolve_model(config.task.model)
    except LlemError:
        return None


def _server_python(config: ExperimentConfig, user: UserConfig) -> Path:
    """The interpreter with the engine's server: its runner's, or this one."""
    runner = find_runner(config.engine, user.runners)
    if runner is not None:
        return runner.python
    availability = get_engine(config.engine).probe()
    if availability.available:
        return Path(sys.executable)
    raise PreflightError(
        [f"cannot launch the `{config.engine}` server: {availability.reason}"],
        hint="make vllm-env",
    )


def _served_model(config: ExperimentConfig, serving: ServingConfig) -> str:
    """The model the endpoint serves: ``task.model`` when it is listed (or the server lists
    none), else the only one it lists."""
    assert serving.endpoint is not None

    async def listed() -> list[str] | None:
        async with new_client(10.0) as client:
            return await check_endpoint(client, serving.endpoint or "")

    names = run_sync(listed())
    if names is None or config.task.model in names:
        return config.task.model
    if len(names) == 1:
        return names[0]
    raise PreflightError(
        [f"{serving.endpoint} serves {', '.join(names) or 'no model'}; set task.model to one"]
    )


def _devices(config: ExperimentConfig) -> list[str]:
    if config.measurement.devices:
        return list(config.measurement.devices)
    if config.serving is not None and config.serving.server == "launch":
        return get_engine(config.engine).devices(config)
    return ["cpu"]


def _schedule(serving: ServingConfig, seed: int) -> Schedule | None:
    if serving.arrival.process == "closed":
        return None
    return arrival_schedule(
        serving.arrival,
        seed=seed,
        duration_s=serving.planned_duration_s,
        n_requests=serving.n_requests,
    )


def _period_problems(
    serving: ServingConfig, schedule: Schedule | None, min_window_s: float
) -> list[str]:
    """The arrival period must hold a window of ``min_window_s``."""
    period = schedule.period_s if schedule is not None else serving.planned_duration_s
    if period is None or period >= min_window_s:
        return []
    what = "duration_s" if serving.n_requests is None else "the scheduled arrivals"
    return [
        f"serving: {what} spans {period:.1f} s, shorter than the minimum window "
        f"({min_window_s:g} s, measurement.min_window_s); lengthen the load"
    ]


def _sampler(
    config: ExperimentConfig,
    user: UserConfig,
    devices: list[str],
    overrides: Overrides,
    server: ServerProcess,
) -> tuple[EnergySampler, str, tuple[TelemetrySource, ...]]:
    sampler, reason, sources = choose_sampler(config, user, overrides, devices)
    if overrides.sampler is not None:  # given explicitly: used as it is
        return sampler, reason, sources
    sampler, note = _attribute_estimate(sampler, config.serving, server)
    return sampler, reason + (f"; {note}" if note else ""), sources


def _attribute_estimate(
    sampler: EnergySampler, serving: ServingConfig | None, server: ServerProcess
) -> tuple[EnergySampler, str | None]:
    """Point the CPU estimate at the server's process tree (never at the load generator)."""
    parts = sampler.parts if isinstance(sampler, CompositeSampler) else (sampler,)
    if not any(isinstance(p, EstimateSampler) for p in parts):
        return sampler, None
    note = "the CPU estimate counts the server's process tree"
    if serving is not None and serving.endpoint is not None:
        url = urlsplit(serving.endpoint)
        server.pid = listening_pid(url.hostname or "", url.port or 80)
        if server.pid is None:
            note = (
                f"no CPU estimate: the server at {serving.endpoint} is not a process of this "
                "host that llem can see, and llem's own CPU time is not the server's energy"
            )
        else:
            note = f"the CPU estimate counts the process listening there (pid {server.pid})"
    kept: list[EnergySampler] = []
    for part in parts:
        if not isinstance(part, EstimateSampler):
            kept.append(part)
        elif serving is None or serving.endpoint is None or server.pid is not None:
            kept.append(
                EstimateSampler(part.watts_per_thread, part.tdp_source, cpu_times=server.cpu_time_s)
            )
    if not kept:
        return NoEnergySampler(), note
    return (kept[0] if len(kept) == 1 else CompositeSampler(kept)), note
