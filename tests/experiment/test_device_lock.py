"""Which devices a run locks: its GPUs by UUID, and the CPU packages whenever RAPL is read,
by the RAPL sampler itself or through Zeus."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.composite import CompositeSampler
from llenergymeasure.energy.nvml import NvmlSampler
from llenergymeasure.energy.rapl import RaplSampler
from llenergymeasure.energy.telemetry import TelemetrySource
from llenergymeasure.energy.zeus import ZeusSampler
from llenergymeasure.errors import PreflightError
from llenergymeasure.experiment.device_lock import (
    CPU_PACKAGES_KEY,
    device_lock_keys,
    locked_devices,
)
from llenergymeasure.experiment.options import RunOptions
from llenergymeasure.experiment.reporter import NullReporter
from llenergymeasure.system.gpus import GpuInfo, list_gpus
from llenergymeasure.system.locks import DeviceLocks, runtime_dir
from llenergymeasure.testing.h200 import h200_nvml


@dataclass(frozen=True)
class Scope:
    """What a run measures, as the device locks read it."""

    sampler: EnergySampler
    scope_gpus: tuple[GpuInfo, ...] = ()
    config: ExperimentConfig = field(default_factory=lambda: ExperimentConfig())
    devices: list[str] = field(default_factory=lambda: ["cuda:0"])
    driver_version: str | None = None
    sources: tuple[TelemetrySource, ...] = ()


def _gpus() -> tuple[GpuInfo, ...]:
    return tuple(list_gpus(h200_nvml())[0])


def test_an_nvml_plus_rapl_run_locks_its_gpu_and_the_cpu_packages(tmp_path: Path) -> None:
    nvml = h200_nvml()
    sampler = CompositeSampler([NvmlSampler(["cuda:0"], nvml=nvml), RaplSampler(tmp_path)])
    keys = device_lock_keys(Scope(sampler, _gpus()))
    assert list(keys) == [nvml.gpus[0].uuid, CPU_PACKAGES_KEY]
    assert keys[CPU_PACKAGES_KEY] == "the CPU packages (RAPL)"
    nvml_only = device_lock_keys(Scope(NvmlSampler(["cuda:0"], nvml=nvml), _gpus()))
    assert list(nvml_only) == [nvml.gpus[0].uuid]


@pytest.mark.parametrize(
    ("cpu_indices", "locks_cpu"), [(None, True), ((0,), True), ((), False)], ids=str
)
def test_zeus_reading_rapl_takes_the_cpu_package_lock(
    cpu_indices: tuple[int, ...] | None, locks_cpu: bool
) -> None:
    zeus = ZeusSampler([0], cpu_indices=cpu_indices)
    keys = device_lock_keys(Scope(zeus, _gpus()))
    assert (CPU_PACKAGES_KEY in keys) is locks_cpu
    assert _gpus()[0].uuid in keys


def test_a_held_cpu_package_lock_stops_a_rapl_run(tmp_path: Path) -> None:
    holder = DeviceLocks([CPU_PACKAGES_KEY], runtime_dir())
    assert holder.try_acquire() == {}
    try:
        with pytest.raises(PreflightError) as caught:  # noqa: SIM117 - the lock is the point
            with locked_devices(
                Scope(RaplSampler(tmp_path), devices=["cpu"]),
                RunOptions(lock_timeout_s=0.1),
                NullReporter(),
            ):
                pass
    finally:
        holder.release()
    (problem,) = caught.value.problems
    assert problem.startswith("the CPU packages (RAPL) is being measured by another llem run")
