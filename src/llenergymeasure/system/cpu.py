"""The host CPU: its model name, and the TDP the CPU energy estimate uses.

The estimate (DESIGN.md §4) needs watts per hardware thread. They come, in this
order, from the user's ``cpu_tdp_w``, from a small table of published TDPs keyed
by CPU model, or from a documented default. Each answer says where it came from,
so the result can state the TDP used and its source.
"""

from __future__ import annotations

import math
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.errors import ConfigError
from llenergymeasure.system.keyfile import key_value

__all__ = [
    "CPU_TDP_TABLE",
    "DEFAULT_WATTS_PER_THREAD",
    "CpuTdp",
    "cpu_model",
    "resolve_cpu_tdp",
    "visible_cpu_count",
]

PROC_CPUINFO = Path("/proc/cpuinfo")

# Used when neither the user nor the table knows the CPU. Published TDP per
# hardware thread is about 3-8 W for server parts (e.g. 350 W / 112 threads =
# 3.1 W, 205 W / 64 = 3.2 W, 280 W / 128 = 2.2 W at the low end) and about 8-16 W
# for desktop and laptop parts (125 W / 16 = 7.8 W, 45 W / 4 = 11 W). 10 W is a
# round figure in the middle; the estimate is labelled low-confidence anyway.
DEFAULT_WATTS_PER_THREAD = 10.0

# (regex on the CPU model string, package TDP in W, hardware threads per package
# with SMT on, label). TDPs are the vendors' published figures (Intel: base /
# processor base power; AMD: default TDP). Apple publishes no TDP: the M-series
# rows are approximate package maxima from reviews and say so in their label.
# A pattern ends in ``(?!\w)`` so that e.g. ``8380`` does not match ``8380H``.
CPU_TDP_TABLE: tuple[tuple[str, float, int, str], ...] = (
    (r"Xeon.*Platinum 8480[+C]?(?!\w)", 350.0, 112, "Intel Xeon Platinum 8480+"),
    (r"Xeon.*Platinum 8380(?!\w)", 270.0, 80, "Intel Xeon Platinum 8380"),
    (r"Xeon.*Platinum 8358(?!\w)", 250.0, 64, "Intel Xeon Platinum 8358"),
    (r"Xeon.*Gold 6338(?!\w)", 205.0, 64, "Intel Xeon Gold 6338"),
    (r"Xeon.*Gold 6248R(?!\w)", 205.0, 48, "Intel Xeon Gold 6248R"),
    (r"EPYC 7742(?!\w)", 225.0, 128, "AMD EPYC 7742"),
    (r"EPYC 7763(?!\w)", 280.0, 128, "AMD EPYC 7763"),
    (r"EPYC 7543(?!\w)", 225.0, 64, "AMD EPYC 7543"),
    (r"EPYC 9654(?!\w)", 360.0, 192, "AMD EPYC 9654"),
    (r"EPYC 9554(?!\w)", 360.0, 128, "AMD EPYC 9554"),
    (r"i9-13900KF?(?!\w)", 125.0, 32, "Intel Core i9-13900K"),
    (r"i9-12900KF?(?!\w)", 125.0, 24, "Intel Core i9-12900K"),
    (r"i7-12700H(?!\w)", 45.0, 20, "Intel Core i7-12700H"),
    (r"i7-1165G7(?!\w)", 28.0, 8, "Intel Core i7-1165G7"),
    (r"Ryzen 9 7950X(?!\w)", 170.0, 32, "AMD Ryzen 9 7950X"),
    (r"Ryzen 9 5950X(?!\w)", 105.0, 32, "AMD Ryzen 9 5950X"),
    (r"Apple M1(?!\w)(?! (?:Pro|Max|Ultra))", 20.0, 8, "Apple M1 (approx.)"),
    (r"Apple M2(?!\w)(?! (?:Pro|Max|Ultra))", 22.0, 8, "Apple M2 (approx.)"),
)


@dataclass(frozen=True)
class CpuTdp:
    """The TDP the CPU energy estimate uses, and where it came from.

    ``source`` is ``"user config"``, ``"built-in table: <label>"`` or
    ``"default per-thread"``. With user config, ``package_tdp_w`` is the configured
    figure and ``threads_per_package`` the logical CPUs it is spread over; with the
    default both are None.
    """

    watts_per_thread: float
    package_tdp_w: float | None
    threads_per_package: int | None
    source: str


def cpu_model(proc_cpuinfo: Path = PROC_CPUINFO) -> str | None:
    """The CPU model string ("model name" in /proc/cpuinfo), else platform's guess, else None."""
    model = key_value(proc_cpuinfo, "model name", ":")
    return model or platform.processor().strip() or None


def visible_cpu_count() -> int:
    """Logical CPUs this process may run on (its affinity mask), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def resolve_cpu_tdp(model: str | None, user_tdp_w: float | None, n_logical_visible: int) -> CpuTdp:
    """Watts per hardware thread: user config, else the built-in table, else the default.

    ``user_tdp_w`` is the TDP of the CPUs this process can see, so it is spread over
    ``n_logical_visible`` threads. A table TDP belongs to one package and is spread
    over that package's threads, whatever share of them the process sees.
    """
    if n_logical_visible < 1:
        raise ValueError(f"n_logical_visible must be at least 1, got {n_logical_visible}")
    if user_tdp_w is not None:
        if not math.isfinite(user_tdp_w) or user_tdp_w <= 0:
            raise ConfigError(
                f"cpu_tdp_w must be a positive number of watts, got {user_tdp_w}",
                hint="set cpu_tdp_w to your CPUs' TDP, e.g. 205, or leave it out",
            )
        return CpuTdp(
            watts_per_thread=user_tdp_w / n_logical_visible,
            package_tdp_w=user_tdp_w,
            threads_per_package=n_logical_visible,
            source="user config",
        )
    if model is not None:
        for pattern, tdp_w, n_threads, label in CPU_TDP_TABLE:
            if re.search(pattern, model):
                return CpuTdp(
                    watts_per_thread=tdp_w / n_threads,
                    package_tdp_w=tdp_w,
                    threads_per_package=n_threads,
                    source=f"built-in table: {label}",
                )
    return CpuTdp(
        watts_per_thread=DEFAULT_WATTS_PER_THREAD,
        package_tdp_w=None,
        threads_per_package=None,
        source="default per-thread",
    )
