"""RAPL energy counters of the CPU packages and DRAM, read from the Linux powercap sysfs tree.

The tree under the root (``/sys/class/powercap`` unless told otherwise)::

    intel-rapl:0/                name "package-0", energy_uj, max_energy_range_uj  -> cpu:0
        intel-rapl:0:0/          name "core"    (part of the package figure: skipped)
        intel-rapl:0:1/          name "dram"                                      -> dram:0
    intel-rapl:1/                name "package-1" -> cpu:1, or "psys" (whole platform: skipped)

Recent kernels expose AMD CPUs under the same ``intel-rapl`` names; some use
``amd-rapl``. Only one family is used (``intel-rapl`` first), so a package is never
counted twice; ``intel-rapl-mmio`` duplicates ``package-0`` and is ignored. Zones
are mapped by the ``name`` file, not by their position in the tree.

Counters are in µJ and wrap at ``max_energy_range_uj`` (about 262 kJ: some 20
minutes at 200 W). :class:`RaplSampler` reads twice and so corrects one wrap per
window; :class:`RaplTelemetry`, polled often, follows every wrap. Since Linux 5.10
``energy_uj`` is readable by root only (CVE-2020-8694).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.energy.base import Availability, EnergyReading
from llenergymeasure.energy.telemetry import DeviceSample
from llenergymeasure.errors import EnergyError
from llenergymeasure.records.energy import DomainEnergy

__all__ = ["DEFAULT_ROOT", "RaplSampler", "RaplTelemetry", "RaplZone", "discover_rapl_zones"]

DEFAULT_ROOT = Path("/sys/class/powercap")

# Zone families in order of preference; the first one present is used alone.
_FAMILIES = ("intel-rapl", "amd-rapl")
# "package-0", or "package-0-die-1" on multi-die packages (the dies of one package add up)
_PACKAGE_NAME = re.compile(r"package-(\d+)(?:-die-\d+)?")
_SKIPPED_REASON = (
    "core and uncore are parts of the package figure and psys covers the whole platform; "
    "adding them would count energy twice"
)
_UJ_PER_J = 1_000_000


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone: where it is, what it measures, and whether its counter can be read.

    ``domain`` is ``cpu:N`` for package N, ``dram:N`` for the DRAM of package N, and
    None for zones that are not measured (core, uncore, psys, unknown names).
    ``error`` says why the counter is unreadable, or is None.
    """

    path: Path
    name: str
    domain: str | None
    max_energy_range_uj: int | None
    readable: bool
    error: str | None = None

    @property
    def zone_id(self) -> str:
        """The zone's folder name, e.g. ``intel-rapl:0:1``."""
        return self.path.name

    @property
    def family(self) -> str:
        """``intel-rapl`` or ``amd-rapl``."""
        return self.zone_id.split(":", 1)[0]


def discover_rapl_zones(root: Path = DEFAULT_ROOT) -> list[RaplZone]:
    """Every zone of the first RAPL family found under ``root`` (packages, then their subzones).

    Returns an empty list when ``root`` has no RAPL zones (not Linux, no driver, a VM).
    """
    for family in _FAMILIES:
        packages = _numbered_folders(root, re.compile(rf"{re.escape(family)}:(\d+)"))
        if not packages:
            continue
        zones: list[RaplZone] = []
        for package_path in packages:
            package = _zone(package_path, parent=None)
            zones.append(package)
            subzone = re.compile(rf"{re.escape(family)}:(\d+):(\d+)")
            zones.extend(
                _zone(path, parent=package) for path in _numbered_folders(package_path, subzone)
            )
        return zones
    return []


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
        return _availability(discover_rapl_zones(self.root), self.root)

    def begin(self) -> None:
        """Read every measured counter, then note the clock."""
        zones = discover_rapl_zones(self.root)
        availability = _availability(zones, self.root)
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
                warnings.append(_unreadable_warning(zone, zone.error or "unreadable", self.root))
                continue
            try:
                begin_uj[zone.path] = _read_uj(zone.path)
            except (OSError, ValueError) as err:
                warnings.append(_unreadable_warning(zone, _describe(err), self.root))
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
                for domain, uj in sorted(energy_uj.items(), key=lambda item: _domain_key(item[0]))
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
            for domain in sorted(by_domain, key=_domain_key)
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
                raw_uj = _read_uj(zone.path)
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


def _window_delta_uj(
    zone: RaplZone, begin_uj: int | None, warnings: list[str]
) -> tuple[int, bool] | None:
    """The zone's µJ over the window and whether it wrapped; None (with a warning) if unknown."""
    if begin_uj is None:
        return None  # unreadable at begin: warned then
    try:
        end_uj = _read_uj(zone.path)
    except (OSError, ValueError) as err:
        warnings.append(
            f"{zone.domain}: the RAPL counter {zone.zone_id} became unreadable during the "
            f"window ({_describe(err)}); its energy is unknown"
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


def _availability(zones: Sequence[RaplZone], root: Path) -> Availability:
    if not zones:
        return Availability(
            False,
            f"no RAPL powercap zones under {root} (needs Linux with the intel_rapl or "
            "amd RAPL driver; most virtual machines have none)",
        )
    packages = [z for z in zones if z.domain is not None and z.domain.startswith("cpu:")]
    if not packages:
        names = ", ".join(f"{z.zone_id} ({z.name or '?'})" for z in zones)
        return Availability(
            False, f"no CPU package zone among the RAPL zones under {root}: {names}"
        )
    unreadable = [z for z in zones if z.domain is not None and not z.readable]
    problems = "; ".join(f"{z.zone_id} ({z.domain}): {z.error}" for z in unreadable)
    fix = _fix(unreadable, root)
    if not any(z.readable for z in packages):
        return Availability(
            False,
            f"RAPL counters under {root} are not readable: {problems}"
            + (f"; {fix}" if fix else ""),
        )
    readable = sorted(
        {z.domain for z in zones if z.domain is not None and z.readable}, key=_domain_key
    )
    reason = f"RAPL counters readable for {', '.join(readable)} ({zones[0].family})"
    if unreadable:
        reason += f"; not readable: {problems}" + (f"; {fix}" if fix else "")
    return Availability(True, reason)


def _fix(unreadable: Iterable[RaplZone], root: Path) -> str | None:
    """The permission fix, when a counter was refused for permissions."""
    for zone in unreadable:
        if zone.error is not None and zone.error.startswith("permission"):
            return _permission_fix(zone, root)
    return None


def _permission_fix(zone: RaplZone, root: Path) -> str:
    return f"run as root or `sudo chmod o+r {root}/{zone.family}:*/energy_uj`"


def _unreadable_warning(zone: RaplZone, why: str, root: Path) -> str:
    message = (
        f"{zone.domain}: the RAPL counter {zone.zone_id} is not readable ({why}); "
        "its energy is unknown"
    )
    if why.startswith("permission"):
        return f"{message}; {_permission_fix(zone, root)}"
    return message


def _zone(path: Path, parent: RaplZone | None) -> RaplZone:
    try:
        name = path.joinpath("name").read_text(encoding="utf-8").strip()
    except OSError:
        name = ""
    try:
        max_uj: int | None = int(path.joinpath("max_energy_range_uj").read_text(encoding="ascii"))
    except (OSError, ValueError):
        max_uj = None
    error: str | None = None
    try:
        _read_uj(path)
    except (OSError, ValueError) as err:
        error = _describe(err)
    return RaplZone(
        path=path,
        name=name,
        domain=_domain(name, parent),
        max_energy_range_uj=max_uj,
        readable=error is None,
        error=error,
    )


def _domain(name: str, parent: RaplZone | None) -> str | None:
    package = _PACKAGE_NAME.fullmatch(name)
    if package is not None and parent is None:
        return f"cpu:{package.group(1)}"
    if name == "dram" and parent is not None and parent.domain is not None:
        return "dram:" + parent.domain.partition(":")[2]
    return None  # core, uncore, psys, or a name we do not know


def _read_uj(zone_path: Path) -> int:
    return int(zone_path.joinpath("energy_uj").read_text(encoding="ascii"))


def _describe(err: Exception) -> str:
    if isinstance(err, PermissionError):
        return "permission denied: energy_uj is readable by root only on recent kernels"
    if isinstance(err, FileNotFoundError):
        return "the counter file is gone"
    if isinstance(err, ValueError):
        return "the counter does not hold a number"
    return str(err) or type(err).__name__


def _numbered_folders(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    """Sub-folders whose names match ``pattern``, in numeric order of its groups."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    found: list[tuple[tuple[int, ...], Path]] = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is not None and entry.is_dir():
            found.append((tuple(int(g) for g in match.groups()), entry))
    return [path for _, path in sorted(found)]


def _domain_key(domain: str) -> tuple[int, int]:
    """``cpu:0, dram:0, cpu:1, dram:1, ...``."""
    kind, _, index = domain.partition(":")
    return (int(index) if index.isdigit() else 0, 0 if kind == "cpu" else 1)
