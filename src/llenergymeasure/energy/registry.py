"""Energy samplers by name, loaded lazily, and the choice ``auto`` makes.

A sampler's module is imported only when that sampler is asked for, so naming
one never loads a vendor library (pynvml, zeus, codecarbon) by accident.

``auto`` (DESIGN §4, best first): GPUs in scope from NVML (else Zeus); the CPU
from RAPL (else CodeCarbon, else the labelled estimate). Every choice carries
its reason, including why better samplers were passed over.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, get_args

from llenergymeasure.config.models import EnergySamplerName
from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.telemetry import TelemetrySource
from llenergymeasure.errors import EnergyError

__all__ = ["Selection", "sampler_class", "sampler_names", "select_sampler"]

# name -> "module:Class". Imported on first use only.
_SAMPLERS: dict[str, str] = {
    "nvml": "llenergymeasure.energy.nvml:NvmlSampler",
    "zeus": "llenergymeasure.energy.zeus:ZeusSampler",
    "rapl": "llenergymeasure.energy.rapl:RaplSampler",
    "codecarbon": "llenergymeasure.energy.codecarbon:CodeCarbonSampler",
    "estimate": "llenergymeasure.energy.estimate:EstimateSampler",
    "none": "llenergymeasure.energy.estimate:NoEnergySampler",
}
_ESTIMATE_REASON = (
    "no hardware energy counter readable on this host — using the labelled CPU estimate "
    "(process CPU time x TDP per hardware thread)"
)
_NONE_REASON = "energy measurement disabled (measurement.energy_sampler: none)"


@dataclass(frozen=True)
class Selection:
    """The chosen sampler, why, and the telemetry sources that go with it."""

    sampler: EnergySampler
    reason: str
    sources: tuple[TelemetrySource, ...] = ()


@dataclass(frozen=True)
class _Host:
    """What the samplers need to know about where the experiment runs."""

    gpus: tuple[str, ...]
    watts_per_thread: float
    tdp_source: str
    powercap_root: Path | None
    nvml: Any


def sampler_names() -> tuple[str, ...]:
    """Names of the samplers implemented in this installation, best first."""
    return tuple(_SAMPLERS)


def sampler_class(name: str) -> type[EnergySampler]:
    """Import and return the sampler class registered under ``name``."""
    return cast("type[EnergySampler]", _load(name))


def select_sampler(
    requested: str,
    *,
    watts_per_thread: float,
    tdp_source: str,
    devices: Sequence[str] = ("cpu",),
    powercap_root: Path | None = None,
    nvml: Any = None,
) -> Selection:
    """The sampler for ``measurement.energy_sampler`` on ``devices`` and why it was chosen.

    ``watts_per_thread``/``tdp_source`` configure the CPU estimate; ``powercap_root``
    and ``nvml`` are the hardware seams (defaults: the real sysfs tree and pynvml).
    A named sampler must be available on this host, else :class:`EnergyError`.
    """
    host = _Host(
        gpus=tuple(d for d in devices if d.startswith("cuda")),
        watts_per_thread=watts_per_thread,
        tdp_source=tdp_source,
        powercap_root=powercap_root,
        nvml=nvml,
    )
    if requested == "auto":
        return _select_auto(host)
    if requested == "fake":
        raise EnergyError(
            "the fake energy sampler is driven by scripted power figures and cannot be "
            "chosen by name",
            hint="build FakeEnergySampler({...}) and pass it as `sampler=`",
        )
    if requested not in _SAMPLERS:
        raise _unknown(requested)
    sampler = _build(requested, host)
    availability = sampler.probe()
    if not availability.available:
        raise EnergyError(
            f"energy sampler {requested!r} cannot read energy on this host: {availability.reason}",
            hint="use `energy_sampler: auto` to fall back to the best available one",
        )
    reason = _NONE_REASON if requested == "none" else f"requested: {availability.reason}"
    return Selection(sampler, reason, _sources_for([requested], host))


def _select_auto(host: _Host) -> Selection:
    passed_over: list[str] = []
    chosen: list[tuple[str, EnergySampler, str]] = []
    groups: list[tuple[str, ...]] = [("nvml", "zeus")] if host.gpus else []
    groups.append(("rapl", "codecarbon", "estimate"))
    for candidates in groups:
        for name in candidates:
            try:
                sampler = _build(name, host)
                availability = sampler.probe()
            except EnergyError as err:
                passed_over.append(f"{name}: {err.message}")
                continue
            if availability.available:
                chosen.append((name, sampler, availability.reason))
                break
            passed_over.append(f"{name}: {availability.reason}")
    reason = "; ".join(
        f"{name}: {_ESTIMATE_REASON if name == 'estimate' else why}" for name, _, why in chosen
    )
    if passed_over:
        reason += f" [passed over: {'; '.join(passed_over)}]"
    samplers = [sampler for _, sampler, _ in chosen]
    names = [name for name, _, _ in chosen]
    if len(samplers) == 1:
        return Selection(samplers[0], reason, _sources_for(names, host))
    from llenergymeasure.energy.composite import CompositeSampler

    return Selection(CompositeSampler(samplers), reason, _sources_for(names, host))


def _sources_for(names: Sequence[str], host: _Host) -> tuple[TelemetrySource, ...]:
    """Telemetry that matches the chosen samplers, plus this process's CPU and memory."""
    from llenergymeasure.energy.process import ProcessTelemetry

    sources: list[TelemetrySource] = [ProcessTelemetry()]
    if "nvml" in names or "zeus" in names:
        from llenergymeasure.energy.nvml import NvmlTelemetry

        sources.insert(0, NvmlTelemetry(host.gpus or ("cuda:0",), nvml=host.nvml))
    if "rapl" in names:
        from llenergymeasure.energy.rapl import RaplTelemetry

        sources.insert(0, RaplTelemetry(*([host.powercap_root] if host.powercap_root else [])))
    return tuple(sources)


def _load(name: str) -> Callable[..., EnergySampler]:
    target = _SAMPLERS.get(name)
    if target is None:
        raise _unknown(name)
    module_name, _, class_name = target.partition(":")
    factory: Callable[..., EnergySampler] = getattr(
        importlib.import_module(module_name), class_name
    )
    return factory


def _build(name: str, host: _Host) -> EnergySampler:
    factory = _load(name)
    if name == "estimate":
        return factory(host.watts_per_thread, host.tdp_source)
    if name == "nvml":
        return factory(host.gpus or ("cuda:0",), nvml=host.nvml)
    if name == "zeus":
        return factory(tuple(int(d.partition(":")[2] or 0) for d in host.gpus) or (0,))
    if name == "rapl" and host.powercap_root is not None:
        return factory(host.powercap_root)
    return factory()


def _unknown(name: str) -> EnergyError:
    # the names a config may use; `fake` is a test seam, passed as an object instead
    known = tuple(dict.fromkeys(("auto", *get_args(EnergySamplerName))))
    close = difflib.get_close_matches(name, known, n=1)
    suggestion = f"; did you mean {close[0]!r}?" if close else ""
    return EnergyError(
        f"unknown energy sampler {name!r}{suggestion}",
        hint=f"choose one of: {', '.join(known)}",
    )
