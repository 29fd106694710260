"""The power/thermal trace: a background thread that polls telemetry sources on a fixed schedule.

::

    trace = PowerTrace([gpus, ProcessTelemetry()], interval_ms=100).start()
    trace.mark("window_start"); ...inference...; trace.mark("window_end")
    result = trace.stop()
    t0, t1 = result.marks["window_start"], result.marks["window_end"]
    result.power_stats("gpu:0", t0, t1); write_timeseries(result.to_rows(), path)

Times are *trace time*: seconds since the trace's origin (``start()``, or the
first ``sample_once()``/``mark()`` of a trace sampled by hand). ``Trace.origin_s``
holds the clock value of that origin, to convert other timestamps.

Ticks follow a schedule anchored to the start (tick k at ``start + k x interval``),
so a late tick does not delay the next one; a tick missed altogether is skipped,
not made up with back-to-back samples, and shows as a gap.

Sources are read in the sampler thread while the main thread usually holds the
GIL. Every call that releases the GIL (a system call, a ctypes call into NVML)
costs the sampler up to one switch interval (5 ms) to win it back, so a source
should make few such calls per read: batch vendor queries, keep files open.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

from llenergymeasure.energy.running_energy import EnergySoFar, RunningEnergy, Snapshot
from llenergymeasure.energy.telemetry import DeviceSample, TelemetrySource
from llenergymeasure.energy.trace_record import PowerStats, Trace, TraceRow
from llenergymeasure.errors import EnergyError

__all__ = ["EnergySoFar", "PowerStats", "PowerTrace", "Trace", "TraceRow"]


class PowerTrace:
    """Polls telemetry sources every ``interval_ms`` in a background thread.

    ``start()`` takes one sample at once, then one per tick; ``stop()`` ends the
    thread, takes a last sample (so the trace covers the moment it stopped) and
    returns the :class:`Trace`. A source whose ``read()`` raises is recorded once
    in ``errors`` and not polled again; the thread itself never dies of it. The
    trace does not close its sources: whoever opened them does.

    ``clock`` must be a monotonic clock in seconds; tests that drive the trace by
    hand with :meth:`sample_once` may pass a manual one (the thread needs a real one).
    """

    def __init__(
        self,
        sources: Sequence[TelemetrySource],
        interval_ms: int = 100,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if interval_ms < 1:
            raise EnergyError(f"the trace interval must be at least 1 ms, got {interval_ms}")
        self.interval_ms = interval_ms
        self._sources = list(sources)
        self._clock = clock
        self._live = [True] * len(self._sources)
        self._origin: float | None = None
        self._readings: list[tuple[float, DeviceSample]] = []  # TraceRows are built at stop()
        self._ticks: list[float] = []
        self._marks: dict[str, float] = {}
        self._errors: list[str] = []
        self._running = RunningEnergy()
        self._at_marks: dict[str, Snapshot] = {}
        self._lock = threading.Lock()  # guards the lists, dicts and totals above
        self._sampling = threading.Lock()  # one sample_once at a time
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: Trace | None = None

    @property
    def interval_s(self) -> float:
        """The sampling interval in seconds."""
        return self.interval_ms / 1000.0

    def start(self) -> PowerTrace:
        """Take one sample now and start the sampler thread; returns self."""
        if self._thread is not None or self._result is not None:
            raise EnergyError("a power trace can be started only once")
        anchor = self._clock()
        with self._lock:
            if self._origin is None:
                self._origin = anchor
        self.sample_once()
        self._thread = threading.Thread(
            target=self._run, args=(anchor,), name="llem-power-trace", daemon=True
        )
        self._thread.start()
        return self

    def sample_once(self) -> float:
        """Poll every live source once; returns the tick's trace time.

        Each row is stamped with the midpoint of its source's read.
        """
        with self._sampling:
            origin = self._ensure_origin()
            tick_s = self._clock() - origin
            readings: list[tuple[float, DeviceSample]] = []
            for index, source in enumerate(self._sources):
                if not self._live[index]:
                    continue
                before = self._clock()
                try:
                    samples = source.read()
                    t_s = (before + self._clock()) / 2.0 - origin
                    readings.extend((t_s, sample) for sample in samples)
                except Exception as err:  # a failing source must not kill the sampler
                    self._live[index] = False
                    self._record_error(
                        f"telemetry source {source.name!r} failed at t={before - origin:.3f} s "
                        f"and was dropped from the trace: {type(err).__name__}: {err}"
                    )
            with self._lock:
                self._ticks.append(tick_s)
                self._readings.extend(readings)
                for t_s, sample in readings:
                    self._running.add(t_s, sample)
            return tick_s

    def mark(self, label: str) -> float:
        """Record the trace time of a named instant (the last call per label wins)."""
        with self._lock:
            if self._origin is None:
                self._origin = self._clock()
            t_s = self._clock() - self._origin
            self._marks[label] = t_s
            self._at_marks[label] = self._running.snapshot()
        return t_s

    def energy_since(self, label: str) -> EnergySoFar | None:
        """What the traced devices used from mark ``label`` to the latest sample: a live
        figure (see ``energy/running_energy.py``). None before the mark, or when no
        device reports energy or power."""
        with self._lock:
            at_mark = self._at_marks.get(label)
            return None if at_mark is None else self._running.since(at_mark)

    def stop(self, timeout_s: float = 5.0) -> Trace:
        """Stop the thread (waiting at most ``timeout_s``) and return the trace; idempotent."""
        if self._result is not None:
            return self._result
        self._stop_event.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=timeout_s)
            if thread.is_alive():
                self._record_error(
                    f"the sampler thread did not stop within {timeout_s:g} s (a source hung)"
                )
            else:
                self.sample_once()
        with self._lock:
            self._result = Trace(
                interval_ms=self.interval_ms,
                samples=tuple(TraceRow.from_sample(t, sample) for t, sample in self._readings),
                marks=dict(self._marks),
                errors=tuple(self._errors),
                ticks=tuple(self._ticks),
                origin_s=self._origin if self._origin is not None else 0.0,
            )
        return self._result

    def __enter__(self) -> PowerTrace:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, anchor: float) -> None:
        interval_s = self.interval_s
        tick = 1
        try:
            while True:
                delay_s = anchor + tick * interval_s - self._clock()
                # Event.wait, not sleep: stop() wakes the thread at once.
                if self._stop_event.wait(max(delay_s, 0.0)):
                    return
                self.sample_once()
                # The next tick is the first one still ahead: missed ticks are skipped.
                behind = math.floor((self._clock() - anchor) / interval_s) + 1
                tick = max(tick + 1, behind)
        except Exception as err:  # never die silently
            self._record_error(f"the sampler thread stopped: {type(err).__name__}: {err}")

    def _ensure_origin(self) -> float:
        with self._lock:
            if self._origin is None:
                self._origin = self._clock()
            return self._origin

    def _record_error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)
