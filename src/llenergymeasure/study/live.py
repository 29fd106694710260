"""``status.json``: what a running study is doing, readable from outside its process.

The manifest records how runs ended; this file says what the runs in flight are doing
right now (their phase, progress and countdowns) and what the study is waiting for.
:class:`LiveStatus` sits in front of the study's reporter, passes every event on, and
rewrites the file atomically on every phase transition, start, end and wait (progress
alone at most every 5 s). ``llem results status`` reads it, from another terminal
or another process, while the study runs. The file is removed when the session ends;
one left behind belongs to a study process that was killed (the study folder's lock,
``study.lock``, tells the two apart).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llenergymeasure.records.atomic import atomic_write_text
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.manifest import ManifestEntry
from llenergymeasure.study.models import StudyProtocol
from llenergymeasure.study.reporter import StudyReporter

__all__ = ["LIVE_FILE", "STARTING_PHASE", "LiveRun", "LiveState", "LiveStatus", "read_live"]

LIVE_FILE = "status.json"
# The phase of a run between its start and the child's first event (the fork server's
# start-up, imports, the child's set-up).
STARTING_PHASE = "starting"
# Progress inside a measured window is written rarely: each write is a few milliseconds of
# disk and CPU on the machine being measured.
_PROGRESS_WRITE_S = 5.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LiveRun(_Frozen):
    """One run in flight: its phase since when, its progress, its countdown, an alert.

    In the measured window: the output tokens so far, and the energy the traced devices
    used since the window began with how it was obtained (None when not readable).
    """

    index: int
    cycle: int
    label: str
    started_at: datetime
    phase: str = Field(description="the step the run is in; `starting` until its first event")
    phase_at: datetime = Field(description="when the run entered that step")
    news_at: datetime = Field(description="when the run last sent an event")
    what: str | None = Field(None, description="the countable work (requests, warm-up runs)")
    done: int | None = None
    total: int | None = None
    n_output_tokens: int | None = None
    energy_j: float | None = None
    energy_method: str | None = Field(None, description="`counter` or `integrated`")
    wait_reason: str | None = Field(None, description="why the run counts down")
    wait_until: datetime | None = None
    alert: str | None = Field(None, description="a problem with the run's worker, until news")


class LiveState(_Frozen):
    """The content of ``status.json``."""

    schema_version: str = "1"
    pid: int
    host: str
    started_at: datetime
    updated_at: datetime = Field(description="when the study last rewrote this file")
    protocol: StudyProtocol
    deadline_at: datetime | None = Field(None, description="when the time budget runs out")
    waiting_reason: str | None = Field(None, description="why the study waits to start a run")
    waiting_until: datetime | None = None
    note: str | None = Field(None, description="the study's latest note, e.g. why it stops")
    runs: tuple[LiveRun, ...] = ()


def read_live(study_dir: Path) -> LiveState | None:
    """The study's ``status.json``, or None when there is none (or it cannot be read)."""
    try:
        return LiveState.model_validate_json((study_dir / LIVE_FILE).read_bytes())
    except (OSError, ValidationError):
        return None


class LiveStatus:
    """A StudyReporter that keeps ``status.json`` and passes every event to ``inner``."""

    def __init__(
        self,
        study_dir: Path,
        inner: StudyReporter,
        protocol: StudyProtocol,
        *,
        budget_left_s: float | None = None,
    ) -> None:
        self._file = study_dir / LIVE_FILE
        self._inner = inner
        self._runs: dict[tuple[int, int], LiveRun] = {}
        self._waiting: tuple[str, datetime] | None = None
        self._note: str | None = None
        self._written_at = float("-inf")
        started = _now()
        self._head = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": started,
            "protocol": protocol,
            "deadline_at": None
            if budget_left_s is None
            else started + timedelta(seconds=budget_left_s),
        }
        self._write()

    def run_started(self, label: str, index: int, cycle: int) -> None:
        self._waiting = None
        now = _now()
        self._runs[(index, cycle)] = LiveRun(
            index=index,
            cycle=cycle,
            label=label,
            started_at=now,
            phase=STARTING_PHASE,
            phase_at=now,
            news_at=now,
        )
        self._inner.run_started(label, index, cycle)
        self._write()

    def progress(self, index: int, cycle: int, event: RunEvent) -> None:
        run = self._runs.get((index, cycle))
        if run is not None:
            self._runs[(index, cycle)] = _apply(run, event)
        self._inner.progress(index, cycle, event)
        if not _between(event) or time.monotonic() - self._written_at >= _PROGRESS_WRITE_S:
            self._write()

    def run_finished(self, entry: ManifestEntry) -> None:
        self._runs.pop((entry.index, entry.cycle), None)
        self._inner.run_finished(entry)
        self._write()

    def waiting(self, seconds: float, reason: str) -> None:
        self._waiting = (reason, _now() + timedelta(seconds=seconds))
        self._inner.waiting(seconds, reason)
        self._write()

    def note(self, message: str) -> None:
        self._note = message
        self._inner.note(message)
        self._write()

    def close(self) -> None:
        """The session ends: the manifest says the rest."""
        with contextlib.suppress(OSError):
            self._file.unlink()

    def _write(self) -> None:
        self._written_at = time.monotonic()
        waiting = self._waiting if self._waiting and self._waiting[1] > _now() else None
        state = LiveState(
            **self._head,
            updated_at=_now(),
            waiting_reason=waiting[0] if waiting else None,
            waiting_until=waiting[1] if waiting else None,
            note=self._note,
            runs=tuple(self._runs.values()),
        )
        # A full disk must not stop the study: this file is a courtesy, the manifest is not.
        with contextlib.suppress(Exception):
            atomic_write_text(self._file, state.model_dump_json(indent=2) + "\n")


def _between(event: RunEvent) -> bool:
    """A progress event neither first nor last: written at most every 5 s."""
    return event.kind == "progress" and event.done not in (0, event.total)


_PER_PHASE = (
    "what",
    "done",
    "total",
    "n_output_tokens",
    "energy_j",
    "energy_method",
    "wait_reason",
    "wait_until",
)


def _apply(run: LiveRun, event: RunEvent) -> LiveRun:
    """The run's live state after ``event``."""
    now = _now()
    if event.kind == "alert":
        return run.model_copy(update={"alert": event.text})
    update: dict[str, object] = {"news_at": now, "alert": None}
    if event.kind == "phase":
        update |= {"phase": event.text, "phase_at": now, **dict.fromkeys(_PER_PHASE)}
    elif event.kind == "progress":
        update |= {"what": event.text, "done": event.done, "total": event.total}
        # A pass's first event carries no tokens yet: the window's count so far stands.
        if event.n_output_tokens is not None:
            update["n_output_tokens"] = event.n_output_tokens
        if event.energy_j is not None:
            update |= {"energy_j": event.energy_j, "energy_method": event.energy_method}
    elif event.kind == "wait" and event.seconds is not None:
        update |= {"wait_reason": event.text, "wait_until": now + timedelta(seconds=event.seconds)}
    return run.model_copy(update=update)
