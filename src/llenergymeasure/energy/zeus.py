"""The Zeus energy sampler (optional extra ``zeus``): a thin adapter onto :class:`EnergyReading`.

Zeus's ``ZeusMonitor`` reads the same counters as the NVML and RAPL samplers
(GPU energy counter on Volta and newer, RAPL for CPU packages and DRAM) inside a
named window. ``zeus`` is imported only when the sampler is probed or begun.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, Literal

from llenergymeasure.energy.base import Availability, EnergyReading
from llenergymeasure.energy.vendor import installed_version
from llenergymeasure.errors import EnergyError
from llenergymeasure.records.energy import DomainEnergy

__all__ = ["ZeusSampler"]

INSTALL_HINT = "pip install 'llenergymeasure[zeus]'"
_WINDOW = "llenergymeasure"


class ZeusSampler:
    """GPU (``gpu:N``), CPU package (``cpu:N``) and DRAM (``dram:N``) energy from Zeus.

    ``gpu_indices`` are CUDA ordinals, as Zeus takes them (it honours
    ``CUDA_VISIBLE_DEVICES``); ``gpu_uuids`` maps each to the domain NVML names it
    (``gpu:<NVML index>``) and its UUID, so that a GPU is the same domain whichever
    sampler measured it. Without it the domain is the CUDA ordinal, and the details say
    so. ``cpu_indices`` is passed to ``ZeusMonitor``: None lets Zeus measure every CPU
    package it can read, ``()`` measures GPUs only. ``zeus_module`` stands in for
    ``zeus.monitor`` (tests pass a fake). The caller synchronises the devices at
    the window's edges, so Zeus is asked not to.
    """

    name = "zeus"
    # device counters include idle power, so a baseline applies
    needs_baseline = True

    def __init__(
        self,
        gpu_indices: Sequence[int] = (0,),
        *,
        cpu_indices: Sequence[int] | None = None,
        gpu_uuids: Mapping[int, tuple[str, str]] | None = None,
        zeus_module: ModuleType | None = None,
    ) -> None:
        self.gpu_indices = tuple(gpu_indices)
        self.gpu_uuids = dict(gpu_uuids) if gpu_uuids is not None else None
        self.cpu_indices = None if cpu_indices is None else tuple(cpu_indices)
        self._module = zeus_module
        self._monitor: Any = None
        self._open = False

    @property
    def reads_cpu_packages(self) -> bool:
        """Whether Zeus reads the CPU packages' RAPL counters (whole packages, every process)."""
        return self.cpu_indices is None or bool(self.cpu_indices)

    def probe(self) -> Availability:
        """Available when Zeus imports and its monitor starts on the requested GPUs."""
        try:
            module = self._zeus_monitor_module()
        except ImportError as err:
            return Availability(False, f"zeus is not installed ({err}); {INSTALL_HINT}")
        version = installed_version(module, "zeus", "zeus-ml")
        try:
            self._monitor = self._build_monitor(module)
        except Exception as err:  # any vendor failure means "not available here"
            return Availability(False, f"zeus could not start a monitor: {err}", version)
        gpus = ", ".join(f"gpu:{i}" for i in self.gpu_indices) or "no GPUs"
        return Availability(True, f"zeus monitor on {gpus}", version)

    def begin(self) -> None:
        """Start the Zeus window (reads the counters)."""
        if self._monitor is None:
            try:
                module = self._zeus_monitor_module()
            except ImportError as err:
                raise EnergyError("zeus is not installed", hint=INSTALL_HINT) from err
            try:
                self._monitor = self._build_monitor(module)
            except Exception as err:
                raise EnergyError(f"zeus could not start a monitor: {err}") from err
        try:
            self._monitor.begin_window(_WINDOW, sync_execution=False)
        except Exception as err:
            raise EnergyError(f"zeus could not begin its window: {err}") from err
        self._open = True

    def end(self) -> EnergyReading:
        """End the Zeus window and map its measurement onto domains."""
        if not self._open:
            raise EnergyError("zeus sampler: end() called without begin()")
        self._open = False
        try:
            measurement = self._monitor.end_window(_WINDOW, sync_execution=False)
        except Exception as err:
            raise EnergyError(f"zeus could not end its window: {err}") from err

        integrated = _integrated_gpus(self._monitor, self.gpu_indices)
        domains, warnings = self._gpu_domains(measurement.gpu_energy or {}, integrated)
        for kind, by_index in (("cpu", measurement.cpu_energy), ("dram", measurement.dram_energy)):
            for index, joules in sorted((by_index or {}).items()):
                domains.append(
                    DomainEnergy(
                        domain=f"{kind}:{index}",
                        energy_j=_joules(joules),
                        method="counter",
                        source=self.name,
                    )
                )
        return EnergyReading(
            sampler=self.name,
            domains=tuple(domains),
            duration_s=float(measurement.time),
            n_samples=0,
            confidence="medium" if integrated else "high",
            details={
                "gpu_indices": list(self.gpu_indices),
                "gpu_domains": (
                    "named by NVML index, mapped from the CUDA ordinals by UUID"
                    if self.gpu_uuids is not None
                    else "named by CUDA ordinal: NVML could not map them to NVML indices"
                ),
                "cpu_indices": list(getattr(self._monitor, "cpu_indices", None) or []),
                "integrated_gpus": sorted(integrated),
                "sync_execution": "by the caller, not by zeus",
            },
            warnings=tuple(warnings),
        )

    def _gpu_domains(
        self, gpu_energy: Mapping[int, float], integrated: set[int]
    ) -> tuple[list[DomainEnergy], list[str]]:
        """One domain per GPU; a figure Zeus lacks, or a counter that did not advance, is None."""
        warnings: list[str] = []
        domains: list[DomainEnergy] = []
        for index in self.gpu_indices:
            domain, uuid = self._gpu_domain(index)
            energy_j = _joules(gpu_energy.get(index))
            if energy_j is None:
                warnings.append(f"{domain}: zeus returned no energy for this GPU")
            elif energy_j <= 0.0:
                # the counter did not advance: too short a window, or a stalled counter
                energy_j = None
                warnings.append(
                    f"{domain}: the energy counter did not advance over the window "
                    "(shorter than its update period, or stalled); no figure"
                )
            method: Literal["counter", "integrated"] = (
                "integrated" if index in integrated else "counter"
            )
            domains.append(
                DomainEnergy(
                    domain=domain,
                    energy_j=energy_j,
                    method=method,
                    source=self.name,
                    device_uuid=uuid,
                )
            )
        return domains, warnings

    def _gpu_domain(self, ordinal: int) -> tuple[str, str | None]:
        if self.gpu_uuids is not None and ordinal in self.gpu_uuids:
            return self.gpu_uuids[ordinal]
        return f"gpu:{ordinal}", None

    def _zeus_monitor_module(self) -> ModuleType:
        if self._module is not None:
            return self._module
        return importlib.import_module("zeus.monitor")

    def _build_monitor(self, module: ModuleType) -> Any:
        cpu_indices = None if self.cpu_indices is None else list(self.cpu_indices)
        return module.ZeusMonitor(gpu_indices=list(self.gpu_indices), cpu_indices=cpu_indices)


def _integrated_gpus(monitor: Any, gpu_indices: Sequence[int]) -> set[int]:
    """GPUs without an energy counter (before Volta), whose energy Zeus integrates from power."""
    gpus = getattr(monitor, "gpus", None)
    supports = getattr(gpus, "supportsGetTotalEnergyConsumption", None)
    if supports is None:
        return set()
    try:
        return {i for i in gpu_indices if not supports(i)}
    except Exception:  # the answer is a label only; never fail the window over it
        return set()


def _joules(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
