"""Pre-flight on the GPUs a run measures: which they are, and whether they are free for it.

The scope is ``measurement.devices`` when set, else the engine's devices; a transformers
model spread with ``device_map: auto`` (or ``balanced``, ``balanced_low_0``,
``sequential``) may be placed on any GPU this process sees, so all of them are measured.
A GPU that another process is using, or that lacks free memory for the model, gives a
warning (or, with ``strict``, a pre-flight problem): the other work would be measured as
ours, or the load would fail or spill.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.nvml_scope import cuda_ordinal, gpu_indices_in_scope, visible_gpus
from llenergymeasure.energy.telemetry import TelemetrySource
from llenergymeasure.errors import LlemError
from llenergymeasure.records.result import MeasurementWarning
from llenergymeasure.system.gpus import GpuInfo, gpu_warnings

__all__ = [
    "AUTO_DEVICE_MAPS",
    "MeasuredScope",
    "device_problems",
    "host_setup_warnings",
    "measured_devices",
    "scope_findings",
    "scope_gpus",
    "sharing",
]

# transformers/accelerate placements that may use every visible GPU
AUTO_DEVICE_MAPS = frozenset({"auto", "balanced", "balanced_low_0", "sequential"})


@dataclass(frozen=True, kw_only=True)
class MeasuredScope:
    """What a run measures, as the baseline, the idle figures and the device locks need it.

    An offline run's plan and a serving run's plan both extend it. ``devices`` are the
    devices whose energy is measured (the scope); ``scope_gpus`` the GPUs among them as
    NVML lists them.
    """

    config: ExperimentConfig
    sampler: EnergySampler
    sampler_reason: str
    sources: tuple[TelemetrySource, ...]
    devices: list[str]
    warnings: list[MeasurementWarning] = field(default_factory=list)
    scope_gpus: tuple[GpuInfo, ...] = ()
    driver_version: str | None = None

    @property
    def on_gpu(self) -> bool:
        """Whether any measured device is a CUDA GPU."""
        return any(d.startswith("cuda") for d in self.devices)


def host_setup_warnings(gpus: Sequence[GpuInfo]) -> list[MeasurementWarning]:
    """What the GPUs' set-up (persistence, clocks, ECC...) may do to the figures, as warnings."""
    return [
        MeasurementWarning(code="host_setup", message=text, remedy="see the message")
        for text in (gpu_warnings(gpus) if gpus else [])
    ]


def device_problems(config: ExperimentConfig) -> list[str]:
    """``measurement.devices`` entries that name no device."""
    return [
        f"measurement.devices: {device!r} is not a device (cpu, cuda or cuda:N)"
        for device in config.measurement.devices or ()
        if device.strip().lower() != "cpu" and cuda_ordinal(device) is None
    ]


def measured_devices(
    config: ExperimentConfig,
    engine_devices: Sequence[str],
    gpus: Sequence[GpuInfo],
    environ: Mapping[str, str],
) -> list[str]:
    """The devices whose energy this run measures (see the module docstring)."""
    if config.measurement.devices:
        return [d.strip().lower() for d in config.measurement.devices]
    section = config.transformers
    spread = (
        config.engine == "transformers"
        and section is not None
        and section.device_map in AUTO_DEVICE_MAPS
    )
    if spread and any(cuda_ordinal(d) is not None for d in engine_devices):
        n_visible = len(visible_gpus(environ, _uuids(gpus)))
        if n_visible:
            return [f"cuda:{i}" for i in range(n_visible)]
    return list(engine_devices)


def scope_gpus(
    devices: Sequence[str], gpus: Sequence[GpuInfo], environ: Mapping[str, str]
) -> list[GpuInfo]:
    """The GPUs NVML lists that ``devices`` name (empty when they name none, or cannot)."""
    by_index = {g.index: g for g in gpus}
    try:
        indices = gpu_indices_in_scope(devices, environ, _uuids(gpus))
    except LlemError:
        return []  # the energy sampler's pre-flight says what is wrong with the scope
    return [by_index[i] for i in indices if i in by_index]


def scope_findings(
    scope: Sequence[GpuInfo],
    memory_estimate_mib: float | None,
    *,
    strict: bool,
    ours: Collection[int] | None = None,
) -> tuple[list[MeasurementWarning], list[str]]:
    """The warnings about the GPUs in scope (their set-up, other work on them, too little
    free memory), and the problems ``--strict`` makes of the sharing ones."""
    warnings = host_setup_warnings(scope)
    shared = sharing(scope, memory_estimate_mib, ours=ours)
    if strict:
        return warnings, [f"{w.message} (--strict)" for w in shared]
    return warnings + shared, []


def sharing(
    scope: Sequence[GpuInfo],
    memory_estimate_mib: float | None,
    *,
    ours: Collection[int] | None = None,
) -> list[MeasurementWarning]:
    """Other processes on the GPUs in scope, and a model larger than their free memory.

    ``ours`` are the processes whose work is the run's (by default this process; a serving
    run adds the endpoint's server and its children).
    """
    mine = {os.getpid()} if ours is None else set(ours)
    found = []
    for gpu in scope:
        others = [p for p in gpu.processes or () if p.pid not in mine]
        if others:
            shown = ", ".join(
                f"PID {p.pid} ({p.name or 'name unknown'}"
                + (f", {p.used_mib:,.0f} MiB" if p.used_mib is not None else "")
                + ")"
                for p in others
            )
            found.append(
                MeasurementWarning(
                    code="shared_gpu",
                    message=f"{gpu.device} ({gpu.name}) is in use by another process: {shown}; "
                    "its work would be measured as this run's",
                    remedy="wait for it to finish or measure another GPU (--strict refuses)",
                )
            )
    free = [g.memory_free_mib for g in scope]
    if memory_estimate_mib is not None and free and all(f is not None for f in free):
        total_free = sum(f for f in free if f is not None)
        if memory_estimate_mib > total_free:
            where = ", ".join(g.device for g in scope)
            found.append(
                MeasurementWarning(
                    code="gpu_memory",
                    message=f"the model needs about {memory_estimate_mib:,.0f} MiB but {where} "
                    f"has {total_free:,.0f} MiB free",
                    remedy="free the GPU, use a smaller model or dtype, or more GPUs "
                    "(--strict refuses)",
                )
            )
    return found


def _uuids(gpus: Sequence[GpuInfo]) -> list[str]:
    """UUIDs by NVML index ("" where a GPU could not be read)."""
    uuids = [""] * (max((g.index for g in gpus), default=-1) + 1)
    for gpu in gpus:
        uuids[gpu.index] = gpu.uuid
    return uuids
