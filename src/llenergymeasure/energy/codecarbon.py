"""The CodeCarbon energy sampler (optional extra ``codecarbon``): a thin adapter onto
:class:`EnergyReading`.

CodeCarbon's offline tracker is used: no network lookups, no CSV, no API, no lock
file where the installed version lets us say so. Its figures are in kWh; here
they become joules. CodeCarbon mixes hardware counters (RAPL, NVML) with its
own models (CPU TDP x load, RAM size x watts per GB) and does not say which
figure came from which, so every domain is labelled ``method: estimated``.
``codecarbon`` is imported only when the sampler is probed or begun.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from llenergymeasure.energy.base import Availability, EnergyReading
from llenergymeasure.energy.vendor import installed_version
from llenergymeasure.errors import EnergyError
from llenergymeasure.records.energy import DomainEnergy

__all__ = ["CodeCarbonSampler"]

INSTALL_HINT = "pip install 'llenergymeasure[codecarbon]'"
J_PER_KWH = 3_600_000.0
_METHOD_NOTE = (
    "codecarbon does not say which figures came from a hardware counter (RAPL, NVML) and "
    "which from its CPU-TDP and RAM models, so all are labelled estimated"
)


class CodeCarbonSampler:
    """CPU (``cpu:0``) and GPU (``gpu:0``, the sum of all GPUs) from CodeCarbon.

    CodeCarbon's RAM figure is a fixed watts-per-GB model, not a reading, so it is
    kept in ``details`` and never added to the energy total. ``track_gpus=False`` (what
    ``auto`` uses, beside NVML or on a CPU run) keeps its GPU figure out of the reading
    too: only ``cpu:0`` is reported, so no GPU is counted twice.

    ``country_iso_code`` fixes the grid region so that the offline tracker never
    looks it up; ``measure_power_secs`` is CodeCarbon's power-reading period.
    ``codecarbon_module`` stands in for ``codecarbon`` (tests pass a fake);
    ``clock`` times the window.
    """

    name = "codecarbon"
    # in its default "machine" mode CodeCarbon measures the whole host, idle included
    needs_baseline = True

    def __init__(
        self,
        *,
        country_iso_code: str = "USA",
        measure_power_secs: float = 1.0,
        track_gpus: bool = True,
        codecarbon_module: ModuleType | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.country_iso_code = country_iso_code
        self.measure_power_secs = measure_power_secs
        self.track_gpus = track_gpus
        self._module = codecarbon_module
        self._clock = clock
        self._tracker: Any = None
        self._start_s: float | None = None

    def probe(self) -> Availability:
        """Available when CodeCarbon imports and offers its offline tracker."""
        try:
            module = self._codecarbon_module()
        except ImportError as err:
            return Availability(False, f"codecarbon is not installed ({err}); {INSTALL_HINT}")
        version = installed_version(module, "codecarbon")
        if not hasattr(module, "OfflineEmissionsTracker"):
            return Availability(
                False, "this codecarbon has no OfflineEmissionsTracker; " + INSTALL_HINT, version
            )
        return Availability(
            True, "codecarbon offline tracker (figures labelled estimated)", version
        )

    def begin(self) -> None:
        """Build an offline tracker that writes nothing, and start it."""
        try:
            module = self._codecarbon_module()
        except ImportError as err:
            raise EnergyError("codecarbon is not installed", hint=INSTALL_HINT) from err
        tracker_class = module.OfflineEmissionsTracker
        try:
            tracker = tracker_class(**_tracker_kwargs(tracker_class, self._wanted_kwargs()))
            tracker.start()
        except Exception as err:
            raise EnergyError(f"codecarbon could not start tracking: {err}") from err
        self._tracker = tracker
        self._start_s = self._clock()

    def end(self) -> EnergyReading:
        """Stop the tracker and map its kWh figures onto domains, in joules."""
        if self._start_s is None:
            raise EnergyError("codecarbon sampler: end() called without begin()")
        tracker, self._tracker = self._tracker, None
        try:
            tracker.stop()
        except Exception as err:
            raise EnergyError(f"codecarbon could not stop tracking: {err}") from err
        duration_s = self._clock() - self._start_s
        self._start_s = None

        # stop() swallows its own errors and then leaves no figures behind
        data = getattr(tracker, "final_emissions_data", None)
        details: dict[str, Any] = {
            "country_iso_code": self.country_iso_code,
            "measure_power_secs": self.measure_power_secs,
            "method_note": _METHOD_NOTE,
        }
        if data is None:
            return EnergyReading(
                sampler=self.name,
                domains=(self._domain("cpu:0", None),),
                duration_s=duration_s,
                n_samples=0,
                confidence="low",
                details=details,
                warnings=(
                    "codecarbon returned no figures (it failed, or another codecarbon "
                    "instance holds its lock); see its log",
                ),
            )

        domains = [
            self._domain("cpu:0", _joules_from_kwh(getattr(data, "cpu_energy", None))),
        ]
        details["ram_model_j"] = _joules_from_kwh(getattr(data, "ram_energy", None))
        gpu, details["gpu_domain"] = self._gpu(data)
        if gpu is not None:
            domains.insert(0, gpu)
        for field in ("tracking_mode", "cpu_model", "gpu_model", "codecarbon_version"):
            details[field] = getattr(data, field, None)
        warnings = tuple(
            f"{d.domain}: codecarbon gave no figure" for d in domains if d.energy_j is None
        )
        return EnergyReading(
            sampler=self.name,
            domains=tuple(domains),
            duration_s=duration_s,
            n_samples=0,
            confidence="low",
            details=details,
            warnings=warnings,
        )

    def _gpu(self, data: Any) -> tuple[DomainEnergy | None, str]:
        """CodeCarbon's GPU figure as ``gpu:0`` (when it is wanted), and what became of it."""
        gpu_count = getattr(data, "gpu_count", None)
        if not gpu_count:
            return None, "codecarbon tracked no GPU"
        if not self.track_gpus:
            return None, (
                "codecarbon's GPU figure is left out: the GPUs are measured by another sampler "
                "or not at all"
            )
        energy_j = _joules_from_kwh(getattr(data, "gpu_energy", None))
        return (
            self._domain("gpu:0", energy_j),
            f"gpu:0 holds the sum over all {gpu_count} GPUs codecarbon tracked",
        )

    def _domain(self, domain: str, energy_j: float | None) -> DomainEnergy:
        return DomainEnergy(domain=domain, energy_j=energy_j, method="estimated", source=self.name)

    def _codecarbon_module(self) -> ModuleType:
        if self._module is not None:
            return self._module
        return importlib.import_module("codecarbon")

    def _wanted_kwargs(self) -> dict[str, object]:
        return {
            "country_iso_code": self.country_iso_code,
            "measure_power_secs": self.measure_power_secs,
            "log_level": "error",
            "save_to_file": False,
            # the rest off explicitly, so that a ~/.codecarbon.config cannot turn them on
            "save_to_api": False,
            "save_to_logger": False,
            "save_to_prometheus": False,
            "save_to_logfire": False,
            # True skips the lock file that versions 2.5 to 2.8 write by default
            "allow_multiple_runs": True,
        }


# Every supported version accepts these; the others only where its signature names them.
_ALWAYS_PASSED = frozenset({"country_iso_code", "measure_power_secs", "log_level", "save_to_file"})


def _tracker_kwargs(tracker_class: Any, wanted: Mapping[str, object]) -> dict[str, object]:
    """``wanted`` less the keywords that this CodeCarbon version's tracker does not accept."""
    accepted = _accepted_keywords(tracker_class)
    return {k: v for k, v in wanted.items() if k in _ALWAYS_PASSED or k in accepted}


def _accepted_keywords(tracker_class: Any) -> set[str]:
    """Keyword names along the ``__init__`` chain, following ``**kwargs`` to the base classes."""
    accepted: set[str] = set()
    for klass in getattr(tracker_class, "__mro__", ()):
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            break
        accepted.update(
            p.name
            for p in parameters
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        )
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return accepted


def _joules_from_kwh(value: object) -> float | None:
    if isinstance(value, int | float):
        return float(value) * J_PER_KWH
    return None
