"""Where a study stands: done, running (phase, elapsed), pending, failed, and an ETA.

Read from outside the study's process (``llem results status DIR``, in another terminal
or after the study stopped): the manifest says how each run ended, ``status.json``
(``study.live``) what the runs in flight are doing, and the study folder's lock
(``study.lock``) whether a process is running the study at all.

The energy so far is the sum of the completed runs' measured energy (their window energy,
as the manifest records it); runs whose only figure is an estimate are summed apart,
never into the measured figure. A run in flight reports its window's output tokens and
the traced devices' energy so far (``RunningRun``).

The ETA comes from the durations so far: each run still to do is expected to take the
mean recorded duration of its config (of every config, for a config not yet timed), a
run in flight that minus its elapsed time, plus the thermal gaps between the runs left;
runs in flight side by side (the ray executor) divide it. With no run completed there is
no ETA.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from llenergymeasure.study.control import FAILED_STATUSES
from llenergymeasure.study.live import LiveRun, LiveState, read_live
from llenergymeasure.study.lock import is_running
from llenergymeasure.study.manifest import Manifest, ManifestEntry
from llenergymeasure.study.stats import completed_energy

__all__ = [
    "CompletedRun",
    "FinishedRun",
    "RunningRun",
    "StudyState",
    "StudyStatusReport",
    "study_status",
]

StudyState = Literal["running", "stopped", "died"]


@dataclass(frozen=True)
class RunningRun:
    """A run in flight: its phase for how long, its progress or countdown, an alert; in
    its window, output tokens and the traced devices' energy so far (``energy_method``
    says how that was obtained; None when not readable)."""

    index: int
    cycle: int
    label: str
    phase: str | None
    elapsed_s: float | None
    phase_s: float | None
    done: int | None = None
    total: int | None = None
    n_output_tokens: int | None = None
    energy_j: float | None = None
    energy_method: str | None = None
    wait_reason: str | None = None
    wait_left_s: float | None = None
    alert: str | None = None


@dataclass(frozen=True)
class CompletedRun:
    """A completed run: its folder, how long it took, and the figures the manifest keeps
    (``energy_method`` labels ``energy_j``; None where not measured)."""

    index: int
    cycle: int
    label: str
    result: str | None
    duration_s: float | None
    output_tokens_per_s: float | None
    energy_j: float | None
    energy_method: str | None
    j_per_output_token: float | None

    @classmethod
    def of(cls, e: ManifestEntry) -> CompletedRun:
        """The completed run of manifest entry ``e``."""
        m = e.metrics
        return cls(
            index=e.index,
            cycle=e.cycle,
            label=e.label,
            result=e.result,
            duration_s=e.duration_s,
            output_tokens_per_s=m.output_tokens_per_s if m else None,
            energy_j=m.energy_j if m else None,
            energy_method=m.energy_method if m else None,
            j_per_output_token=m.j_per_output_token if m else None,
        )


@dataclass(frozen=True)
class FinishedRun:
    """A run that ended without completing, with the reason the manifest gives."""

    index: int
    cycle: int
    label: str
    status: str
    error: str | None
    n_attempts: int


@dataclass(frozen=True)
class StudyStatusReport:
    """Everything ``llem results status`` shows; ``to_json`` gives it whole."""

    study_dir: Path
    name: str
    status: str
    state: StudyState
    stop_reason: str | None
    process: str | None
    news_age_s: float | None
    n_planned: int
    n_completed: int
    n_pending: int
    running: tuple[RunningRun, ...]
    unfinished: tuple[FinishedRun, ...]
    pending: tuple[tuple[int, int, str], ...]
    eta_s: float | None
    waiting: tuple[str, float] | None
    budget_left_s: float | None
    energy_so_far_j: float | None = None
    n_energy_runs: int = 0
    estimated_so_far_j: float | None = None
    n_estimated_runs: int = 0
    completed: tuple[CompletedRun, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Every field as JSON types (what ``llem results status --json`` prints)."""
        data = asdict(self)
        data["study_dir"] = str(self.study_dir)
        data["pending"] = [{"index": i, "cycle": c, "label": lbl} for i, c, lbl in self.pending]
        data["waiting"] = (
            None if self.waiting is None else {"reason": self.waiting[0], "left_s": self.waiting[1]}
        )
        return data


def study_status(study_dir: Path, *, now: datetime | None = None) -> StudyStatusReport:
    """Where the study in ``study_dir`` stands. StudyError when it has no readable manifest."""
    now = now or datetime.now(timezone.utc)
    manifest = Manifest.load(study_dir)
    running_now = is_running(study_dir)
    live = read_live(study_dir)
    state: StudyState = "running" if running_now else "died" if live is not None else "stopped"
    live_runs = {(r.index, r.cycle): r for r in (live.runs if live and running_now else ())}
    entries = manifest.entries
    in_flight = [e for e in entries if e.status == "running"] if running_now else []
    running = tuple(_running(e, live_runs.get((e.index, e.cycle)), now) for e in in_flight)
    return StudyStatusReport(
        study_dir=study_dir,
        name=manifest.name,
        status=manifest.status,
        state=state,
        stop_reason=manifest.stop_reason,
        process=f"pid {live.pid} on {live.host}" if live else None,
        news_age_s=(now - live.updated_at).total_seconds() if live else None,
        n_planned=len(entries),
        n_completed=sum(e.status == "completed" for e in entries),
        n_pending=sum(e.status == "pending" for e in entries),
        running=running,
        unfinished=tuple(_unfinished(entries, running_now)),
        pending=tuple((e.index, e.cycle, e.label) for e in entries if e.status == "pending"),
        eta_s=_eta_s(entries, running, live if running_now else None),
        waiting=_waiting(live, now) if running_now else None,
        budget_left_s=(
            (live.deadline_at - now).total_seconds()
            if running_now and live and live.deadline_at
            else None
        ),
        **_energy_so_far(entries),
        completed=tuple(CompletedRun.of(e) for e in entries if e.status == "completed"),
    )


def _energy_so_far(entries: Sequence[ManifestEntry]) -> dict[str, Any]:
    """The energy of the runs completed so far: measured and estimated apart, never summed
    together (runs without a figure left out)."""
    measured, estimated = completed_energy(entries)
    return {
        "energy_so_far_j": math.fsum(measured) if measured else None,
        "n_energy_runs": len(measured),
        "estimated_so_far_j": math.fsum(estimated) if estimated else None,
        "n_estimated_runs": len(estimated),
    }


def _running(entry: ManifestEntry, live: LiveRun | None, now: datetime) -> RunningRun:
    elapsed = (now - entry.started_at).total_seconds() if entry.started_at else None
    if live is None:
        return RunningRun(entry.index, entry.cycle, entry.label, None, elapsed, None)
    wait_left = (live.wait_until - now).total_seconds() if live.wait_until else None
    return RunningRun(
        index=entry.index,
        cycle=entry.cycle,
        label=entry.label,
        phase=live.phase,
        elapsed_s=elapsed,
        phase_s=(now - live.phase_at).total_seconds(),
        done=live.done,
        total=live.total,
        n_output_tokens=live.n_output_tokens,
        energy_j=live.energy_j,
        energy_method=live.energy_method,
        wait_reason=live.wait_reason if wait_left and wait_left > 0 else None,
        wait_left_s=wait_left if wait_left and wait_left > 0 else None,
        alert=live.alert,
    )


def _unfinished(entries: Sequence[ManifestEntry], running_now: bool) -> list[FinishedRun]:
    """Failed, crashed, timed out and interrupted runs; a stale ``running`` entry too."""
    found = []
    for e in entries:
        if e.status in FAILED_STATUSES or e.status == "interrupted":
            found.append(FinishedRun(e.index, e.cycle, e.label, e.status, e.error, e.n_attempts))
        elif e.status == "running" and not running_now:
            reason = "the study process stopped during this run (killed?); --resume redoes it"
            found.append(FinishedRun(e.index, e.cycle, e.label, "running", reason, e.n_attempts))
    return found


def _eta_s(
    entries: Sequence[ManifestEntry], running: Sequence[RunningRun], live: LiveState | None
) -> float | None:
    """Seconds until every run is done, from the durations so far (None before any)."""
    durations: dict[str, list[float]] = {}
    for e in entries:
        if e.status == "completed" and e.duration_s is not None:
            durations.setdefault(e.config_hash, []).append(e.duration_s)
    every = [d for ds in durations.values() for d in ds]
    if not every:
        return None

    def expected(entry: ManifestEntry) -> float:
        return statistics.fmean(durations.get(entry.config_hash) or every)

    by_key = {(r.index, r.cycle): r for r in running}
    left = [e for e in entries if e.status != "completed"]
    total = 0.0
    for e in left:
        run = by_key.get((e.index, e.cycle))
        total += max(0.0, expected(e) - (run.elapsed_s or 0.0)) if run else expected(e)
    if live is not None:
        waiting = [e for e in left if (e.index, e.cycle) not in by_key]
        total += _gaps_s(waiting, live)
    return total / max(1, len(running))


def _gaps_s(waiting: Sequence[ManifestEntry], live: LiveState) -> float:
    """The thermal gaps before each run still to start, in planned order."""
    protocol = live.protocol
    gaps = 0.0
    previous: int | None = None
    for entry in waiting:
        same = previous is None or previous == entry.cycle
        gaps += protocol.experiment_gap_s if same else protocol.cycle_gap_s
        previous = entry.cycle
    return gaps


def _waiting(live: LiveState | None, now: datetime) -> tuple[str, float] | None:
    if live is None or live.waiting_until is None or live.waiting_reason is None:
        return None
    left = (live.waiting_until - now).total_seconds()
    return (live.waiting_reason, left) if left > 0 else None
