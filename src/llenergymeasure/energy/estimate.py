"""The CPU energy estimate, for hosts with no readable energy counter, and the "none" sampler.

The estimate (DESIGN.md §4): CPU energy = the CPU time of this process and its descendants
over the window x the TDP per hardware thread. It is always ``method: estimated``,
``confidence: low``, and it says which TDP it used and where that came from. DRAM
is not estimated: there is no ``dram`` domain rather than a made-up figure.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable

import psutil

from llenergymeasure.energy.base import Availability, EnergyReading, WindowClock
from llenergymeasure.errors import EnergyError
from llenergymeasure.records.energy import DomainEnergy

__all__ = ["EstimateSampler", "NoEnergySampler", "process_cpu_time_s"]

ESTIMATE_MODEL = "process CPU time x TDP per hardware thread"


def process_cpu_time_s(pid: int | None = None) -> float:
    """User + system CPU seconds of process ``pid`` (default: this one) and every
    descendant, all threads; 0 when ``pid`` is gone.

    Engines that run their model in helper processes (vLLM's engine core and workers, a
    server's engine) would otherwise vanish from the figure. Live descendants are read
    directly; exited ones count once waited for, through their parent's ``children_*``
    times. A descendant that exits and is not yet waited for at ``end()`` drops out
    until it is.
    """
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):  # it may exit while we look
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


class EstimateSampler:
    """Estimates CPU energy as process CPU time x watts per hardware thread.

    ``watts_per_thread`` and ``tdp_source`` come from the CPU TDP resolution
    (user config, built-in table or default). ``cpu_times`` and ``clock`` are the
    seams tests inject; they default to :func:`process_cpu_time_s` and
    :func:`time.perf_counter`.
    """

    name = "estimate"
    needs_baseline = False

    def __init__(
        self,
        watts_per_thread: float,
        tdp_source: str,
        *,
        cpu_times: Callable[[], float] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not math.isfinite(watts_per_thread) or watts_per_thread <= 0:
            raise EnergyError(
                f"the CPU estimate needs positive watts per thread, got {watts_per_thread}",
                hint="set cpu_tdp_w to your CPUs' TDP in watts",
            )
        self.watts_per_thread = watts_per_thread
        self.tdp_source = tdp_source
        self._cpu_times = cpu_times if cpu_times is not None else process_cpu_time_s
        self._clock = clock if clock is not None else time.perf_counter
        self._start: tuple[float, float] | None = None

    def probe(self) -> Availability:
        """Always available: every supported OS reports a process's CPU time."""
        return Availability(True, "process CPU time is always readable")

    def begin(self) -> None:
        """Note the clock and the process CPU time."""
        self._start = (self._clock(), self._cpu_times())

    def end(self) -> EnergyReading:
        """Close the window: CPU seconds used x watts per thread, on domain ``cpu:0``."""
        if self._start is None:
            raise EnergyError("estimate sampler: end() called without begin()")
        start_s, start_cpu_s = self._start
        self._start = None
        duration_s = self._clock() - start_s
        cpu_time_s = self._cpu_times() - start_cpu_s

        warnings: tuple[str, ...] = ()
        energy_j: float | None = cpu_time_s * self.watts_per_thread
        if cpu_time_s <= 0:
            # CPU time advances in clock ticks (10 ms on Linux); no advance is "too short
            # to tell", not zero energy.
            energy_j = None
            warnings = (
                "process CPU time did not advance over the window (below the clock-tick "
                "resolution); no CPU estimate",
            )
        return EnergyReading(
            sampler=self.name,
            domains=(
                DomainEnergy(
                    domain="cpu:0", energy_j=energy_j, method="estimated", source=self.name
                ),
            ),
            duration_s=duration_s,
            n_samples=0,
            confidence="low",
            details={
                "model": ESTIMATE_MODEL,
                "watts_per_thread": self.watts_per_thread,
                "tdp_source": self.tdp_source,
                "cpu_time_s": cpu_time_s,
                # in hardware threads: 2.0 = two threads busy for the whole window
                "cpu_share": cpu_time_s / duration_s if duration_s > 0 else None,
            },
            warnings=warnings,
        )


class NoEnergySampler:
    """Measures nothing: for ``measurement.energy_sampler: none``. Its total is None, never 0."""

    name = "none"
    needs_baseline = False

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._window = WindowClock(self.name, clock if clock is not None else time.perf_counter)

    def probe(self) -> Availability:
        """Always available."""
        return Availability(True, "energy measurement disabled on request")

    def begin(self) -> None:
        """Note the clock, so the reading still carries the window's duration."""
        self._window.begin()

    def end(self) -> EnergyReading:
        """A reading with no domains."""
        return EnergyReading(
            sampler=self.name,
            domains=(),
            duration_s=self._window.end_s(),
            n_samples=0,
            confidence="low",
            details={"reason": "energy measurement disabled (measurement.energy_sampler: none)"},
        )
