"""When a study stops before every run is done: circuit breaker, fail-fast, time budget.

Both executors ask one :class:`RunControl` before they start a run and tell it how each
run ended. It answers with a :class:`Stop` (the study's status and a reason for the
manifest) or None (go on):

- **circuit breaker**: after ``max_consecutive_failures`` failed runs in a row, pause
  ``BREAKER_PAUSE_S``, probe with the next run, and stop if it fails too. A run that
  was already going when the breaker tripped (the ray executor runs several at once) is
  no probe: its failure counts, but only a run started after the pause can end the study;
- **fail-fast**: stop after the first failed run;
- **time budget** (``study_timeout_s``, ``llem run --timeout``): a run starts only if
  its gap and its expected duration fit in what is left of the session's budget. The
  expected duration is the longest recorded duration of the same config in this study,
  else the longest of any config, else unknown (then only the gap must fit). When the
  budget runs out with a run still going, the stop event is set and the run is
  recorded ``interrupted``, so the study ends within its budget.

A failed run is one that ``failed``, ``crashed`` or ``timed_out``; an interrupted run is
not counted either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from threading import Event

from llenergymeasure.study.manifest import ManifestEntry
from llenergymeasure.study.models import StudyProtocol, StudyStatus

__all__ = ["BREAKER_PAUSE_S", "FAILED_STATUSES", "INTERRUPTED", "RunControl", "Stop", "format_s"]

BREAKER_PAUSE_S = 60.0
FAILED_STATUSES = frozenset({"failed", "crashed", "timed_out"})


@dataclass(frozen=True)
class Stop:
    """The study ends now: its status, and one line saying why (kept in the manifest)."""

    status: StudyStatus
    reason: str


INTERRUPTED = Stop("interrupted", "interrupted (Ctrl-C or SIGTERM); --resume continues the study")


def format_s(seconds: float) -> str:
    """``45 s``, ``12 min 30 s``, ``2 h 5 min``: a duration as people read it."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


class RunControl:
    """Decides, around each run, whether the study goes on (see the module docstring).

    ``history`` is the manifest's entries at the start of the session: their recorded
    durations count for the time budget. ``clock`` is monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        protocol: StudyProtocol,
        history: Iterable[ManifestEntry] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = protocol.max_consecutive_failures
        self._fail_fast = protocol.fail_fast
        self._budget_s = protocol.study_timeout_s
        self._clock = clock
        self._deadline = None if self._budget_s is None else clock() + self._budget_s
        self._in_a_row = 0
        self._probes: set[tuple[str, int]] = set()  # runs allowed to start while tripped
        self._durations: dict[str, list[float]] = {}
        self._timer: threading.Timer | None = None
        self._expired = False
        for entry in history:
            self._note_duration(entry)

    # ------------------------------------------------------------------ between runs

    def pause(self) -> tuple[float, str]:
        """The circuit breaker's pause owed before the next run (a probe once tripped)."""
        if self._in_a_row < self._limit:
            return 0.0, ""
        return BREAKER_PAUSE_S, (
            f"circuit breaker: {self._in_a_row} failures in a row; pausing before a probe run"
        )

    def before(self, entry: ManifestEntry, wait_s: float = 0.0) -> Stop | None:
        """Before ``entry`` starts (after ``wait_s`` of gap): a Stop when it cannot fit.

        Every run is asked about before it starts; one asked about while the breaker is
        tripped is its probe.
        """
        if self._in_a_row >= self._limit:
            self._probes.add(entry.key)
        if self._deadline is None:
            return None
        left_s = self._deadline - self._clock()
        expected_s = self.expected_s(entry.config_hash)
        needed_s = wait_s + (expected_s or 0.0)
        if left_s > 0 and needed_s <= left_s:
            return None
        what = f"{format_s(wait_s)} of gap and " if wait_s > 0 else ""
        guess = f"about {format_s(expected_s)}" if expected_s is not None else "an unknown time"
        return Stop(
            "timed_out",
            f"the time budget of {format_s(self._budget_s or 0.0)} has {format_s(left_s)} left "
            f"and run {entry.index}/c{entry.cycle} needs {what}{guess}, so no more runs start; "
            "--resume continues the study",
        )

    def after(self, entry: ManifestEntry) -> Stop | None:
        """Count how ``entry``'s run ended; a Stop when the study must end now."""
        self._note_duration(entry)
        if entry.status == "interrupted":
            return None
        failed = entry.status in FAILED_STATUSES
        self._in_a_row = self._in_a_row + 1 if failed else 0
        run = f"run {entry.index}/c{entry.cycle} ({entry.label})"
        if failed and self._fail_fast:
            return Stop("fail_fast", f"fail-fast: {run} {entry.status}: {entry.error or ''}")
        if self._in_a_row > self._limit and entry.key in self._probes:
            return Stop(
                "circuit_breaker",
                f"circuit breaker: {self._in_a_row - 1} failed runs in a row, and the probe "
                f"run after the pause failed too ({run} {entry.status})",
            )
        return None

    # ------------------------------------------------------------------ the budget

    def expected_s(self, config_hash: str) -> float | None:
        """How long a run of this config is expected to take, from the durations so far."""
        own = self._durations.get(config_hash)
        if own:
            return max(own)
        every = [d for durations in self._durations.values() for d in durations]
        return max(every) if every else None

    def arm(self, stop: Event) -> None:
        """Set ``stop`` when the budget runs out, to stop a run still going then."""
        if self._deadline is None:
            return
        # A budget built in code skips the config's cap; a timer cannot wait past TIMEOUT_MAX.
        left_s = min(max(0.0, self._deadline - self._clock()), threading.TIMEOUT_MAX / 2)
        self._timer = threading.Timer(left_s, self._expire, [stop])
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        """Cancel the budget's timer (the session is ending)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def out_of_time(self) -> Stop | None:
        """A Stop once the budget has run out (the stop event was set for it)."""
        if not self._expired:
            return None
        return Stop(
            "timed_out",
            f"the time budget of {format_s(self._budget_s or 0.0)} ran out with runs still "
            "going; they were stopped and recorded interrupted; --resume continues the study",
        )

    @property
    def deadline_left_s(self) -> float | None:
        """Seconds left of the budget; None without one."""
        return None if self._deadline is None else self._deadline - self._clock()

    def _expire(self, stop: Event) -> None:
        self._expired = True
        stop.set()

    def _note_duration(self, entry: ManifestEntry) -> None:
        if entry.status == "completed" and entry.duration_s is not None:
            self._durations.setdefault(entry.config_hash, []).append(entry.duration_s)
