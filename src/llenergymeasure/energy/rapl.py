"""RAPL energy counters of the CPU packages and DRAM: the ``rapl`` sampler and telemetry source.

Zones come from :mod:`llenergymeasure.energy.rapl_zones` (which ones exist and what
each measures). Counters are in µJ and wrap at ``max_energy_range_uj`` (about 262 kJ:
some 20 minutes at 200 W). :class:`RaplSampler` reads twice and so corrects one wrap per
window; :class:`RaplTelemetry`, polled often, follows every wrap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.energy.base import Availability, EnergyReading
from llenergymeasure.energy.rapl_zones import (
    DEFAULT_ROOT,
    RaplZone,
    describe_error,
    discover_rapl_zones,
    domain_key,
    rapl_availability,
    read_uj,
    unreadable_warning,
)
from llenergymeasure.energy.telemetry import DeviceSample
from llenergymeasure.errors import EnergyError
from llenergymeasure.records.energy import DomainEnergy

__all__ = ["DEFAULT_ROOT", "RaplSampler", "RaplTelemetry", "RaplZone", "discover_rapl_zones"]

_SKIPPED_REASON = (
    "core and uncore are parts of the package figure and psys covers the whole platform; "
    "adding them would count energy twice"
)
_UJ_PER_J = 1_000_000
# Shorter than this, a window may fall between two RAPL counter updates (~1 ms apart).
_MIN_ADVANCE_S = 0.05


class RaplSampler:
    """Energy of every CPU package (``cpu:N``) and its DRAM (``dram:N``) from the RAPL counters.

    ``root`` is the powercap folder (a fake tree in tests); ``clock`` times the window.
    A counter that cannot be read at either edge gives ``energy_j=None`` and a warning.
    """

    name = "rapl"
    # whole-package counters include idle power, so a baseline applies
    needs_baseline = True

    def __init__(
        self, root: Path = DEFAULT_ROOT, *, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.root = root
        self._clock = clock
        self._window: _Window | None = None

    def probe(self) -> Availability:
        """Available when at least one package counter is readable; else why not, and the fix."""
        return rapl_availability(discover_rapl_zones(self.root), self.root)

    def begin(self) -> None:
        """Read every measured counter, then note the clock."""
        zones = discover_rapl_zones(self.root)
        availability = rapl_availability(zones, self.root)
        if not availability.available:
            raise EnergyError(
                f"RAPL cannot read energy: {availability.reason}",
                hint="use `energy_sampler: auto` to fall back to the best available sampler",
            )
        measured = tuple(z for z in zones if z.domain is not None)
        begin_uj: dict[Path, int] = {}
        warnings: list[str] = []
        for zone in measured:
            if not zone.readable:
                warnings.append(unreadable_warning(zone, zone.error or "unreadable", self.root))
                continue
            try:
                begin_uj[zone.path] = read_uj(zone.path)
            except (OSError, ValueError) as err:
                warnings.append(unreadable_warning(zone, describe_error(err), self.root))
        self._window = _Window(
            start_s=self._clock(),
            zones=tuple(zones),
            measured=measured,
            begin_uj=begin_uj,
            warnings=tuple(warnings),
        )

    def end(self) -> EnergyReading:
        """Read the counters again; energy per domain is the sum of its zones' deltas."""
        window = self._window
        if window is None:
            raise EnergyError("rapl sampler: end() called without begin()")
        self._window = None
        warnings = list(window.warnings)
        energy_uj: dict[str, int | None] = {}
        n_wraps = 0
        for zone in window.measured:
            domain = zone.domain
            assert domain is not None  # measured zones all have one
            delta_uj = _window_delta_uj(zone, window.begin_uj.get(zone.path), warnings)
            if delta_uj is not None and delta_uj[1]:
                n_wraps += 1
            so_far = energy_uj.get(domain, 0)
            energy_uj[domain] = None if so_far is None or delta_uj is None else so_far + delta_uj[0]
        duration_s = self._clock() - window.start_s
        _null_stalled(energy_uj, duration_s, warnings)

        skipped = {z.zone_id: z.name for z in window.zones if z.domain is None}
        details: dict[str, object] = {
            "root": str(self.root),
            "zones": {z.zone_id: z.domain for z in window.measured},
            "skipped_zones": skipped,
            "n_wraps": n_wraps,
        }
        if skipped:
            details["skipped_reason"] = _SKIPPED_REASON
        return EnergyReading(
            sampler=self.name,
            domains=tuple(
                DomainEnergy(
                    domain=domain,
                    energy_j=None if uj is None else uj / _UJ_PER_J,
                    method="counter",
                    source=self.name,
                )
                for domain, uj in sorted(energy_uj.items(), key=lambda item: domain_key(item[0]))
            ),
            duration_s=duration_s,
            n_samples=0,
            confidence="high",
            details=details,
            warnings=tuple(warnings),
        )


class RaplTelemetry:
    """The RAPL domains as a telemetry source: cumulative energy and power since the last read.

    ``energy_j`` is each domain's counter in joules with every wrap undone (so
    differences stay right however long the trace runs); ``power_w`` is the energy
    difference over the time since the previous read, None on the first read.
    Only domains whose counters were all readable when the source was built are reported.
    """

    name = "rapl"

    def __init__(
        self, root: Path = DEFAULT_ROOT, *, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.root = root
        self._clock = clock
        by_domain: dict[str, list[RaplZone]] = {}
        for zone in discover_rapl_zones(root):
            if zone.domain is not None:
                by_domain.setdefault(zone.domain, []).append(zone)
        # a domain with one unreadable zone (a die of a package) would read low: leave it out
        self._zones_by_domain = {
            domain: tuple(by_domain[domain])
            for domain in sorted(by_domain, key=domain_key)
            if all(z.readable for z in by_domain[domain])
        }
        self._last_raw_uj: dict[Path, int] = {}
        self._offset_uj: dict[Path, int] = {}
        self._previous: dict[str, tuple[float, float]] = {}  # domain -> (energy_j, t_s)

    def devices(self) -> list[str]:
        """The domains, e.g. ``["cpu:0", "dram:0", "cpu:1", "dram:1"]``."""
        return list(self._zones_by_domain)

    def read(self) -> list[DeviceSample]:
        """One sample per domain; a domain whose counter cannot be read now has no figures."""
        samples: list[DeviceSample] = []
        now_s = self._clock()
        for domain, zones in self._zones_by_domain.items():
            unwrapped = self._read_domain_uj(zones)
            if unwrapped is None:
                samples.append(DeviceSample(device=domain))
                continue
            total_uj, exact = unwrapped
            energy_j = total_uj / _UJ_PER_J
            previous = self._previous.get(domain) if exact else None
            power_w = None
            if previous is not None and now_s > previous[1]:
                power_w = (energy_j - previous[0]) / (now_s - previous[1])
            self._previous[domain] = (energy_j, now_s)
            samples.append(DeviceSample(device=domain, power_w=power_w, energy_j=energy_j))
        return samples

    def close(self) -> None:
        """Nothing to release: the counters are plain files."""

    def _read_domain_uj(self, zones: Sequence[RaplZone]) -> tuple[int, bool] | None:
        """The domain's unwrapped µJ and whether every wrap was undone exactly."""
        total_uj, exact = 0, True
        for zone in zones:
            try:
                raw_uj = read_uj(zone.path)
            except (OSError, ValueError):
                return None
            last_uj = self._last_raw_uj.get(zone.path)
            self._last_raw_uj[zone.path] = raw_uj
            if last_uj is not None and raw_uj < last_uj:
                if zone.max_energy_range_uj is not None:
                    self._offset_uj[zone.path] = (
                        self._offset_uj.get(zone.path, 0) + zone.max_energy_range_uj
                    )
                else:
                    # without the range the lost part is unknown: continue from the last
                    # value, and give no power for this read
                    self._offset_uj[zone.path] = self._offset_uj.get(zone.path, 0) + last_uj
                    exact = False
            total_uj += raw_uj + self._offset_uj.get(zone.path, 0)
        return total_uj, exact


@dataclass(frozen=True)
class _Window:
    start_s: float
    zones: tuple[RaplZone, ...]
    measured: tuple[RaplZone, ...]
    begin_uj: dict[Path, int]
    warnings: tuple[str, ...]


def _null_stalled(energy_uj: dict[str, int | None], duration_s: float, warnings: list[str]) -> None:
    """A domain whose counters did not advance over the window is no figure, never 0 J.

    A powered CPU package or its DRAM always draws energy and RAPL updates its counters
    about every millisecond, so no advance means a stalled or reset counter (a counter
    that went down is taken as one wrap, above).
    """
    if duration_s < _MIN_ADVANCE_S:
        return
    for domain, uj in energy_uj.items():
        if uj is not None and uj <= 0:
            energy_uj[domain] = None
            warnings.append(
                f"{domain}: the RAPL counter did not advance over the {duration_s:.2f} s "
                "window (stalled or reset); its energy is unknown"
            )


def _window_delta_uj(
    zone: RaplZone, begin_uj: int | None, warnings: list[str]
) -> tuple[int, bool] | None:
    """The zone's µJ over the window and whether it wrapped; None (with a warning) if unknown."""
    if begin_uj is None:
        return None  # unreadable at begin: warned then
    try:
        end_uj = read_uj(zone.path)
    except (OSError, ValueError) as err:
        warnings.append(
            f"{zone.domain}: the RAPL counter {zone.zone_id} became unreadable during the "
            f"window ({describe_error(err)}); its energy is unknown"
        )
        return None
    if end_uj >= begin_uj:
        return end_uj - begin_uj, False
    if zone.max_energy_range_uj is None:
        warnings.append(
            f"{zone.domain}: the RAPL counter {zone.zone_id} wrapped but its "
            "max_energy_range_uj is unreadable; its energy is unknown"
        )
        return None
    # a counter that went down wrapped (once: two reads cannot see more)
    return zone.max_energy_range_uj - begin_uj + end_uj, True
