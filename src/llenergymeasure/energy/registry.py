"""Energy samplers by name, loaded lazily, and the choice ``auto`` makes.

A sampler's module is imported only when that sampler is asked for, so naming
one never loads a vendor library (pynvml, zeus, codecarbon) by accident.

``auto`` (DESIGN §4, best first): GPUs in scope from NVML, which must be readable
on a CUDA run (a CUDA run that NVML cannot measure fails in pre-flight, never falls
back to a CPU-only figure); the CPU from RAPL (else CodeCarbon with its GPU tracking
off, else the labelled estimate). Every choice carries its reason, including why
better samplers were passed over. No domain is measured by two samplers.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, get_args

from llenergymeasure.config.models import EnergySamplerName
from llenergymeasure.energy.base import Availability, EnergySampler
from llenergymeasure.energy.telemetry import TelemetrySource
from llenergymeasure.errors import EnergyError

__all__ = ["Selection", "sampler_class", "sampler_names", "select_sampler", "share_nvml_polling"]

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
    if host.gpus:
        chosen.append(_gpu_part(host))
    for name in ("rapl", "codecarbon", "estimate"):
        try:
            sampler = _build(name, host, in_auto=True)
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


def _gpu_part(host: _Host) -> tuple[str, EnergySampler, str]:
    """NVML on the GPUs in scope; EnergyError (a pre-flight problem) when it cannot read them."""
    sampler = _build("nvml", host)
    try:
        availability = sampler.probe()
    except EnergyError as err:
        availability = Availability(False, err.message)
    if not availability.available:
        raise EnergyError(
            f"this run uses {', '.join(host.gpus)} but NVML cannot measure it: "
            f"{availability.reason}",
            hint="install nvidia-ml-py and check the driver with `nvidia-smi`, or set "
            "measurement.energy_sampler to another sampler (zeus, codecarbon, estimate, none)",
        )
    return "nvml", sampler, availability.reason


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


def share_nvml_polling(sampler: EnergySampler, sources: Sequence[TelemetrySource]) -> None:
    """Feed the NVML sampler (alone or in a composite) from the trace's NVML telemetry.

    Both would otherwise poll NVML every ~100 ms in threads of their own, in the engine's
    process, at ~1 ms per NVML call on an H200 VM; fed, the sampler starts no poller.
    Nothing changes without an NVML sampler or an NVML telemetry source among ``sources``.
    """
    if not any(getattr(source, "name", None) == "nvml" for source in sources):
        return
    from llenergymeasure.energy.composite import CompositeSampler
    from llenergymeasure.energy.nvml import NvmlSampler, NvmlTelemetry

    telemetry = next((s for s in sources if isinstance(s, NvmlTelemetry)), None)
    parts = sampler.parts if isinstance(sampler, CompositeSampler) else (sampler,)
    for part in parts:
        if isinstance(part, NvmlSampler) and telemetry is not None:
            part.take_power_from(telemetry)


def _load(name: str) -> Callable[..., EnergySampler]:
    target = _SAMPLERS.get(name)
    if target is None:
        raise _unknown(name)
    module_name, _, class_name = target.partition(":")
    factory: Callable[..., EnergySampler] = getattr(
        importlib.import_module(module_name), class_name
    )
    return factory


def _build(name: str, host: _Host, *, in_auto: bool = False) -> EnergySampler:
    factory = _load(name)
    if name == "estimate":
        return factory(host.watts_per_thread, host.tdp_source)
    if name == "nvml":
        return factory(host.gpus or ("cuda:0",), nvml=host.nvml)
    if name == "zeus":
        ordinals = tuple(int(d.partition(":")[2] or 0) for d in host.gpus) or (0,)
        return factory(ordinals, gpu_uuids=_uuids_of(host))
    if name == "rapl" and host.powercap_root is not None:
        return factory(host.powercap_root)
    if name == "codecarbon" and in_auto:
        # beside NVML (or on a CPU run) only its CPU figure is wanted: never its GPU one
        return factory(track_gpus=False)
    return factory()


def _uuids_of(host: _Host) -> dict[int, tuple[str, str]] | None:
    """CUDA ordinal -> (``gpu:<NVML index>``, UUID) of the GPUs in scope; None if unknown."""
    from llenergymeasure.energy.nvml_api import load_nvml
    from llenergymeasure.energy.nvml_scope import open_scope

    try:
        nvml = load_nvml(host.nvml)
        nvml.init()
    except Exception:  # Zeus's own probe says why it cannot run
        return None
    try:
        gpus, _ = open_scope(nvml, host.gpus or ("cuda:0",), os.environ)
        return {int(g.cuda_device.partition(":")[2]): (g.domain, g.uuid) for g in gpus}
    except Exception:
        return None
    finally:
        nvml.shutdown()


def _unknown(name: str) -> EnergyError:
    # the names a config may use; `fake` is a test seam, passed as an object instead
    known = tuple(dict.fromkeys(("auto", *get_args(EnergySamplerName))))
    close = difflib.get_close_matches(name, known, n=1)
    suggestion = f"; did you mean {close[0]!r}?" if close else ""
    return EnergyError(
        f"unknown energy sampler {name!r}{suggestion}",
        hint=f"choose one of: {', '.join(known)}",
    )
