"""The RAPL zones of the Linux powercap sysfs tree: which exist, what each measures, and
whether its counter can be read.

The tree under the root (``/sys/class/powercap`` unless told otherwise)::

    intel-rapl:0/                name "package-0", energy_uj, max_energy_range_uj  -> cpu:0
        intel-rapl:0:0/          name "core"    (part of the package figure: skipped)
        intel-rapl:0:1/          name "dram"                                      -> dram:0
    intel-rapl:1/                name "package-1" -> cpu:1, or "psys" (whole platform: skipped)

Recent kernels expose AMD CPUs under the same ``intel-rapl`` names; some use
``amd-rapl``. Only one family is used (``intel-rapl`` first), so a package is never
counted twice; ``intel-rapl-mmio`` duplicates ``package-0`` and is ignored. Zones
are mapped by the ``name`` file, not by their position in the tree. Since Linux 5.10
``energy_uj`` is readable by root only (CVE-2020-8694).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.records.base import Availability

__all__ = [
    "DEFAULT_ROOT",
    "RaplZone",
    "describe_error",
    "discover_rapl_zones",
    "domain_key",
    "rapl_availability",
    "read_uj",
    "unreadable_warning",
]

DEFAULT_ROOT = Path("/sys/class/powercap")

# Zone families in order of preference; the first one present is used alone.
_FAMILIES = ("intel-rapl", "amd-rapl")
# "package-0", or "package-0-die-1" on multi-die packages (the dies of one package add up)
_PACKAGE_NAME = re.compile(r"package-(\d+)(?:-die-\d+)?")


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


def rapl_availability(zones: Sequence[RaplZone], root: Path) -> Availability:
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
        {z.domain for z in zones if z.domain is not None and z.readable}, key=domain_key
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


def unreadable_warning(zone: RaplZone, why: str, root: Path) -> str:
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
        read_uj(path)
    except (OSError, ValueError) as err:
        error = describe_error(err)
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


def read_uj(zone_path: Path) -> int:
    return int(zone_path.joinpath("energy_uj").read_text(encoding="ascii"))


def describe_error(err: Exception) -> str:
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


def domain_key(domain: str) -> tuple[int, int]:
    """``cpu:0, dram:0, cpu:1, dram:1, ...``."""
    kind, _, index = domain.partition(":")
    return (int(index) if index.isdigit() else 0, 0 if kind == "cpu" else 1)
