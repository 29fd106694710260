"""Energy samplers by name, loaded lazily, and the choice ``auto`` makes.

A sampler's module is imported only when that sampler is asked for, so naming
one never loads a vendor library (pynvml, zeus, codecarbon) by accident.

Adding a hardware sampler (nvml, rapl, ...) is one row in ``_SAMPLERS``, placed
in best-first order with ``tried_by_auto=True``, plus the class's ``probe()``:
``auto`` takes the first row whose probe says available.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import cast, get_args

from llenergymeasure.config.models import EnergySamplerName
from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.errors import EnergyError

__all__ = ["sampler_class", "sampler_names", "select_sampler"]

# (name, "module:Class", tried_by_auto), best first (DESIGN.md §4: nvml, zeus,
# rapl, codecarbon, then the estimate). Hardware samplers take no arguments.
_SAMPLERS: tuple[tuple[str, str, bool], ...] = (
    ("estimate", "llenergymeasure.energy.estimate:EstimateSampler", False),
    ("none", "llenergymeasure.energy.estimate:NoEnergySampler", False),
    ("fake", "llenergymeasure.energy.fake:FakeEnergySampler", False),
)

_ESTIMATE_FALLBACK_REASON = (
    "no hardware energy counter readable on this host (no NVML GPU, no RAPL powercap) "
    "— using the labelled CPU estimate"
)
_NONE_REASON = "energy measurement disabled (measurement.energy_sampler: none)"


def sampler_names() -> tuple[str, ...]:
    """Names of the samplers implemented in this installation, best first."""
    return tuple(name for name, _, _ in _SAMPLERS)


def sampler_class(name: str) -> type[EnergySampler]:
    """Import and return the sampler class registered under ``name``."""
    return cast("type[EnergySampler]", _load(name))


def select_sampler(
    requested: str, *, watts_per_thread: float, tdp_source: str
) -> tuple[EnergySampler, str]:
    """The sampler for ``measurement.energy_sampler`` and why it was chosen.

    ``auto`` takes the best sampler whose probe succeeds, falling back to the CPU
    estimate; ``watts_per_thread`` and ``tdp_source`` configure that estimate.
    A named sampler must be implemented here and available on this host, else
    :class:`EnergyError`.
    """
    if requested == "auto":
        return _select_auto(watts_per_thread, tdp_source)
    if requested == "fake":
        raise EnergyError(
            "the fake energy sampler is driven by scripted power figures and cannot be "
            "chosen by name",
            hint="build FakeEnergySampler({...}) and pass it as `sampler=`",
        )
    if requested not in sampler_names():
        if requested in get_args(EnergySamplerName):
            raise EnergyError(
                f"energy sampler {requested!r} is not available in this installation",
                hint="use `energy_sampler: estimate` or `energy_sampler: auto`",
            )
        raise _unknown(requested)

    sampler = _build(requested, watts_per_thread, tdp_source)
    availability = sampler.probe()
    if not availability.available:
        raise EnergyError(
            f"energy sampler {requested!r} cannot read energy on this host: {availability.reason}",
            hint="use `energy_sampler: auto` to fall back to the best available one",
        )
    if requested == "none":
        return sampler, _NONE_REASON
    return sampler, f"requested (measurement.energy_sampler: {requested})"


def _select_auto(watts_per_thread: float, tdp_source: str) -> tuple[EnergySampler, str]:
    tried: list[str] = []
    for name, _, tried_by_auto in _SAMPLERS:
        if not tried_by_auto:
            continue
        try:
            sampler = _build(name, watts_per_thread, tdp_source)
            availability = sampler.probe()
        except EnergyError as err:
            tried.append(f"{name}: {err.message}")
            continue
        if availability.available:
            return sampler, f"{name}: {availability.reason}"
        tried.append(f"{name}: {availability.reason}")
    reason = _ESTIMATE_FALLBACK_REASON
    if tried:
        reason = f"{reason} [{'; '.join(tried)}]"
    return _build("estimate", watts_per_thread, tdp_source), reason


def _load(name: str) -> Callable[..., EnergySampler]:
    for row_name, target, _ in _SAMPLERS:
        if row_name == name:
            module_name, _, class_name = target.partition(":")
            factory: Callable[..., EnergySampler] = getattr(
                importlib.import_module(module_name), class_name
            )
            return factory
    raise _unknown(name)


def _build(name: str, watts_per_thread: float, tdp_source: str) -> EnergySampler:
    factory = _load(name)
    if name == "estimate":
        return factory(watts_per_thread, tdp_source)
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
