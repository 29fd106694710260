"""One call of ``RayExecutor.run``: what is pending, in flight, retried, rested and heard.

The driver's loop: start pending runs while the cluster has slots (the run control
allowing), pass on what the workers said, record each run that ends, retry a run whose
worker was lost, and cancel the runs in flight when the study stops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from threading import Event
from typing import Any, Protocol

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.study.control import INTERRUPTED, RunControl, Stop
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.isolation import RunLimits, RunOutcome, append_log, log_path
from llenergymeasure.study.manifest import Ledger, ManifestEntry
from llenergymeasure.study.models import StudyProtocol
from llenergymeasure.study.ray_files import SharedCpu, write_folder
from llenergymeasure.study.ray_worker import Rests, WorkerReport
from llenergymeasure.study.reporter import StudyReporter

__all__ = ["SILENT_WORKER_S", "ConfigsByHash", "ExecutorCall", "RaySession", "one_line"]

ConfigsByHash = Mapping[str, ExperimentConfig]
_POLL_S = 0.2  # how often the driver checks for finished runs, news and the stop event
_CANCEL_WAIT_S = 10.0  # after a stop, how long the workers get to kill their experiments
_LAST_NEWS_S = 2.0  # how long the driver waits for a finished run's last events
_MAX_REASON = 300
# A run whose worker has not been heard for this long is flagged in the live table
# (workers beat every second); Ray itself may take longer to declare a node dead.
SILENT_WORKER_S = 5.0


class _Executor(Protocol):
    max_retries: int

    def cluster(self) -> tuple[float, float]: ...

    def submit(
        self, config: ExperimentConfig, entry: ManifestEntry, n_gpus: int, **kwargs: Any
    ) -> Any: ...


@dataclass(frozen=True)
class ExecutorCall:
    """What the study spine hands an executor for one ``run``: the ledger, the configs by
    hash, the protocol, the reporter, the stop event, how to wait, and the run control."""

    ledger: Ledger
    configs: ConfigsByHash
    protocol: StudyProtocol
    reporter: StudyReporter
    stop: Event
    wait: Callable[[float], object]
    control: RunControl


@dataclass(frozen=True)
class _Running:
    entry: ManifestEntry
    n_gpus: int
    submitted_at: float


class RaySession:
    """The state of one executor run (see the module docstring)."""

    def __init__(
        self, executor: _Executor, call: ExecutorCall, n_gpus: Mapping[str, int], sink: Any
    ) -> None:
        self._executor = executor
        self._ray: Any = importlib.import_module("ray")
        self._errors: Any = importlib.import_module("ray.exceptions")
        self._ledger, self._configs, self._protocol = call.ledger, call.configs, call.protocol
        self._reporter, self._stop, self._wait = call.reporter, call.stop, call.wait
        self._control, self._n_gpus, self._sink = call.control, n_gpus, sink
        self._pending: deque[ManifestEntry] = deque()
        self._in_flight: dict[Any, _Running] = {}
        self._retried: dict[tuple[str, int], int] = {}
        self._rests: Rests = {}
        self._shared = SharedCpu()
        self._alerted: set[tuple[int, int]] = set()
        self._no_more: Stop | None = None  # set when the time budget has no room left
        self._drained: Any = None  # the sink's answer still on its way

    def run(self, entries: Sequence[ManifestEntry]) -> Stop | None:
        """Run ``entries``; a Stop when the study ends early. The runs in flight at the end
        (a stop, Ctrl-C, an error) are cancelled and recorded interrupted."""
        self._pending.extend(entries)
        stopped: Stop | None = None
        try:
            while stopped is None and (self._in_flight or (self._pending and not self._no_more)):
                if self._stop.is_set():
                    return self._control.out_of_time() or INTERRUPTED
                self._fill()
                self._hear()
                stopped = self._collect()
        finally:
            self._cancel()
        return stopped or self._no_more

    def _fill(self) -> None:
        """Start pending runs while slots are free (one probe at a time after a breaker trip)."""
        if self._no_more is not None:
            return
        pause_s, reason = self._control.pause()
        if pause_s > 0:
            if self._in_flight:  # a run still in flight may complete and reset the breaker
                return
            if self._pending:
                self._no_more = self._control.before(self._pending[0], pause_s)
            if self._no_more is None:
                self._reporter.waiting(pause_s, reason)
                self._wait(pause_s)
                if self._pending and not self._stop.is_set():
                    self._start(self._pending.popleft())
            return
        gpus, cpus = self._executor.cluster()
        while self._pending:
            n_gpus = self._n_gpus[self._pending[0].config_hash]
            used_gpus = sum(r.n_gpus for r in self._in_flight.values())
            fits = used_gpus + n_gpus <= gpus and len(self._in_flight) + 1 <= cpus
            if self._in_flight and not fits:
                return  # Ray would queue it; wait here, so that its GPU's rest is known
            self._no_more = self._control.before(self._pending[0])
            if self._no_more is not None:
                return
            self._start(self._pending.popleft())

    def _start(self, entry: ManifestEntry) -> None:
        entry = self._ledger.start(entry)
        self._reporter.run_started(entry.label, entry.index, entry.cycle)
        protocol = self._protocol
        ref = self._executor.submit(
            self._configs[entry.config_hash],
            entry,
            self._n_gpus[entry.config_hash],
            limits=RunLimits.of(protocol),
            rests=dict(self._rests),
            experiment_gap_s=protocol.experiment_gap_s,
            cycle_gap_s=protocol.cycle_gap_s,
            events=self._sink,
        )
        self._in_flight[ref] = _Running(entry, self._n_gpus[entry.config_hash], time.monotonic())

    def _hear(self, wait_s: float = 0.0) -> None:
        """Pass the workers' events on; flag runs whose worker went quiet.

        The sink's answer is awaited up to ``wait_s``: a drain already asked for and not
        yet answered is collected on a later turn, never asked for again (its events are
        in it).
        """
        if self._drained is None:
            self._drained = self._sink.drain.remote()
        ready, _ = self._ray.wait([self._drained], timeout=wait_s)
        if not ready:
            return
        drained, self._drained = self._drained, None
        try:
            events, quiet_s = self._ray.get(drained)
        except Exception:  # the sink is news only: the runs go on without it
            return
        running = {(r.entry.index, r.entry.cycle) for r in self._in_flight.values()}
        for index, cycle, data in events:
            event = RunEvent.from_json(data)
            if event is not None and (index, cycle) in running:
                self._alerted.discard((index, cycle))
                self._reporter.progress(index, cycle, event)
        self._flag_quiet(running, quiet_s)

    def _flag_quiet(self, running: set[tuple[int, int]], quiet_s: Mapping[Any, float]) -> None:
        """An alert for each run whose worker, heard before, has been quiet too long."""
        for key in running:
            silent_s = quiet_s.get(key)
            if silent_s is not None and silent_s > SILENT_WORKER_S and key not in self._alerted:
                self._alerted.add(key)
                text = f"no news from its Ray worker for {silent_s:.0f} s: lost or unreachable?"
                self._reporter.progress(*key, RunEvent("alert", text))

    def _collect(self) -> Stop | None:
        """Record the next run to end (waiting up to a poll interval for one)."""
        ready, _ = self._ray.wait(list(self._in_flight), num_returns=1, timeout=_POLL_S)
        if ready:  # the run's last events before its end: any drain on its way, then a new one
            self._hear(wait_s=_LAST_NEWS_S)
            self._hear(wait_s=_LAST_NEWS_S)
        for ref in ready:
            running = self._in_flight.pop(ref)
            try:
                report: WorkerReport = self._ray.get(ref)
            except self._errors.TaskCancelledError:
                self._interrupted(running, "interrupted: the Ray task was cancelled")
                return self._control.out_of_time() or INTERRUPTED
            except self._errors.RayError as err:
                lost = self._lost(running, err)
                if lost is None:
                    continue
                return self._control.after(lost)
            finished = self._record(running, report)
            if finished.status == "interrupted":
                return self._control.out_of_time() or INTERRUPTED
            stop = self._control.after(finished)
            if stop is not None:
                return stop
        return None

    def _record(self, running: _Running, report: WorkerReport) -> ManifestEntry:
        """Write the run's files into the study folder and its transition into the manifest."""
        entry = running.entry
        study_dir = self._ledger.study_dir
        outcome = report.outcome
        result_dir = None
        log = log_path(study_dir, entry.index, entry.cycle)
        log.parent.mkdir(exist_ok=True)  # as the local executor leaves it, even when empty
        if outcome.log_path is not None:
            append_log(log, report.files.get(outcome.log_path.as_posix(), b""))
        if outcome.result_dir is not None:
            result_dir = write_folder(study_dir, outcome.result_dir, report.files)
            try:
                self._shared.add(report.placement, result_dir)
            except (OSError, ValueError) as err:  # a result this version cannot read back
                note = f"--- shared CPU energy not checked: {type(err).__name__}: {one_line(err)}"
                append_log(log, f"{note}\n".encode())
        outcome = dataclasses.replace(
            outcome, result_dir=result_dir, log_path=log if log.is_file() else None
        )
        for slot in report.slots:
            self._rests[slot] = (report.ended_at_unix, entry.cycle)
        finished = self._ledger.finish(entry, outcome, placement=report.placement)
        self._reporter.run_finished(finished)
        return finished

    def _lost(self, running: _Running, err: BaseException) -> ManifestEntry | None:
        """Record an attempt whose Ray task was lost; its entry, or None when it is retried."""
        entry = running.entry
        used = self._retried.get(entry.key, 0)
        retry = used < self._executor.max_retries
        reason = f"crashed: the Ray task was lost ({type(err).__name__}: {one_line(err)})"
        note = f"; retrying ({used + 1} of {self._executor.max_retries})" if retry else ""
        log = log_path(self._ledger.study_dir, entry.index, entry.cycle)
        append_log(log, f"--- attempt {entry.n_attempts}: {reason}{note}\n".encode())
        outcome = RunOutcome(
            "crashed", time.monotonic() - running.submitted_at, reason, log_path=log
        )
        finished = self._ledger.finish(entry, outcome)
        self._reporter.run_finished(finished)
        if not retry:
            return finished
        self._retried[entry.key] = used + 1
        self._pending.appendleft(finished)
        return None

    def _interrupted(self, running: _Running, message: str) -> None:
        outcome = RunOutcome("interrupted", time.monotonic() - running.submitted_at, message)
        self._reporter.run_finished(self._ledger.finish(running.entry, outcome))

    def _cancel(self) -> None:
        """Cancel the runs in flight, give their workers a moment, record them interrupted."""
        if not self._in_flight:
            return
        refs = list(self._in_flight)
        for ref in refs:
            with contextlib.suppress(Exception):
                self._ray.cancel(ref)
        # A cancelled task's worker kills its experiment's process group as it stops.
        with contextlib.suppress(Exception):
            self._ray.wait(refs, num_returns=len(refs), timeout=_CANCEL_WAIT_S)
        why = "the study's time budget ran out" if self._control.out_of_time() else "it stopped"
        for running in self._in_flight.values():
            self._interrupted(running, f"interrupted: {why}; the study cancelled its Ray task")
        self._in_flight.clear()


def one_line(err: BaseException) -> str:
    """An exception's text on one line, at most 300 characters."""
    text = " ".join(str(err).split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"
