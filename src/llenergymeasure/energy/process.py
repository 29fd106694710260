"""Telemetry of this process: CPU utilisation and resident memory, as device ``process``."""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil

from llenergymeasure.energy.telemetry import DeviceSample
from llenergymeasure.errors import EnergyError

__all__ = ["ProcessTelemetry"]

_MIB = 1024 * 1024


class ProcessTelemetry:
    """A telemetry source with one device, ``process``: this process's CPU % and RSS.

    ``utilisation_pct`` is the CPU time the process used since the previous read
    (or since construction) over the wall time in between, x 100, summed over all
    cores, so it may exceed 100 (psutil ``cpu_percent`` semantics). It is None
    when no wall time has passed. ``memory_used_mib`` is the resident set size.
    ``pid`` picks another process; ``clock`` is the seam tests inject.
    """

    name = "process"

    def __init__(
        self, pid: int | None = None, *, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        try:
            self._process = psutil.Process(pid)
            cpu_s = self._cpu_s()
        except psutil.Error as err:
            raise EnergyError(
                f"cannot read process {pid if pid is not None else 'self'}: {err}"
            ) from err
        self._clock = clock
        self._last = (clock(), cpu_s)

    def devices(self) -> list[str]:
        """Always ``["process"]``."""
        return ["process"]

    def read(self) -> list[DeviceSample]:
        """CPU % since the previous read and RSS in MiB, now."""
        try:
            with self._process.oneshot():
                cpu_s = self._cpu_s()
                rss_bytes = self._process.memory_info().rss
        except psutil.Error as err:
            raise EnergyError(f"cannot read process {self._process.pid}: {err}") from err
        now = self._clock()
        last_wall_s, last_cpu_s = self._last
        self._last = (now, cpu_s)
        wall_s = now - last_wall_s
        utilisation = 100.0 * (cpu_s - last_cpu_s) / wall_s if wall_s > 0 else None
        return [
            DeviceSample(
                device="process",
                utilisation_pct=utilisation,
                memory_used_mib=rss_bytes / _MIB,
            )
        ]

    def close(self) -> None:
        """Nothing to release."""

    def _cpu_s(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)
