"""A fake Linux powercap tree in a temp folder, for the RAPL tests."""

from __future__ import annotations

from pathlib import Path

MAX_UJ = 262_143_328_850  # a real package's max_energy_range_uj


def write_zone(path: Path, name: str, energy_uj: int = 0, max_uj: int = MAX_UJ) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


def set_counter(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


def make_tree(root: Path, family: str = "intel-rapl", n_packages: int = 2) -> dict[str, Path]:
    """Packages with a core and a dram subzone each, laid out as Linux does.

    Linux also lists every subzone at the top level (as a link), has a bare
    control-type folder, a psys zone and an MMIO copy of package 0: none of
    those may be counted.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / family).mkdir()  # the control type: no counter
    zones: dict[str, Path] = {}
    for n in range(n_packages):
        package = write_zone(root / f"{family}:{n}", f"package-{n}")
        core = write_zone(package / f"{family}:{n}:0", "core")
        dram = write_zone(package / f"{family}:{n}:1", "dram", max_uj=65_712_999_613)
        (root / core.name).symlink_to(core)
        (root / dram.name).symlink_to(dram)
        zones |= {f"cpu:{n}": package, f"core:{n}": core, f"dram:{n}": dram}
    zones["psys"] = write_zone(root / f"{family}:{n_packages}", "psys")
    write_zone(root / "intel-rapl-mmio:0", "package-0")
    return zones
