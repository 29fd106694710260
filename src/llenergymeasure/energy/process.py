"""Telemetry of this process: CPU utilisation and resident memory, as device ``process``.

Each read must not release the GIL more than it has to: the trace's thread reads
while the main thread runs Python, and a thread that gives up the GIL for a
system call waits a whole switch interval (5 ms) to get it back. psutil's
``/proc`` readers make several such calls per read (40-60 ms per read measured
against a CPU-bound main thread: more than a 20 ms tick), so this source uses
``time.process_time`` (no GIL release) and, on Linux, a single ``pread`` of an
already open ``/proc/self/statm``; psutil only where there is no procfs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from llenergymeasure.energy.telemetry import DeviceSample
from llenergymeasure.errors import EnergyError

__all__ = ["ProcessTelemetry"]

_MIB = 1024 * 1024


class ProcessTelemetry:
    """A telemetry source with one device, ``process``: this process's CPU % and RSS.

    ``utilisation_pct`` is the CPU time the process used (all threads) since the
    previous read, or since construction, over the wall time in between, x 100:
    summed over cores, so it may exceed 100 (psutil ``cpu_percent`` semantics).
    It is None when no wall time has passed. ``memory_used_mib`` is the resident
    set size, from ``statm`` where it exists, else from psutil. ``clock`` (wall),
    ``cpu_time`` (process CPU seconds) and ``statm`` are the seams tests inject.
    Call :meth:`close` when done: it holds a file descriptor.
    """

    name = "process"

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.perf_counter,
        cpu_time: Callable[[], float] = time.process_time,
        statm: Path = Path("/proc/self/statm"),
    ) -> None:
        self._clock = clock
        self._cpu_time = cpu_time
        self._statm_fd: int | None = None
        self._process: psutil.Process | None = None
        try:
            if statm.exists():
                self._statm_fd = os.open(statm, os.O_RDONLY)
                self._page_bytes = os.sysconf("SC_PAGE_SIZE")
            else:
                self._process = psutil.Process()
        except (OSError, psutil.Error) as err:
            raise EnergyError(f"cannot read this process's memory: {err}") from err
        self._last = (clock(), cpu_time())

    def devices(self) -> list[str]:
        """Always ``["process"]``."""
        return ["process"]

    def read(self) -> list[DeviceSample]:
        """CPU % since the previous read and RSS in MiB, now."""
        cpu_s = self._cpu_time()
        rss_bytes = self._rss_bytes()
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
        """Close ``/proc/self/statm``; safe to call twice."""
        fd, self._statm_fd = self._statm_fd, None
        if fd is not None:
            os.close(fd)

    def _rss_bytes(self) -> int:
        try:
            if self._statm_fd is not None:
                # statm: size resident shared text lib data dt, in pages.
                return int(os.pread(self._statm_fd, 128, 0).split()[1]) * self._page_bytes
            if self._process is not None:
                return int(self._process.memory_info().rss)
        except (OSError, ValueError, IndexError, psutil.Error) as err:
            raise EnergyError(f"cannot read this process's memory: {err}") from err
        raise EnergyError("process telemetry read after close()")
