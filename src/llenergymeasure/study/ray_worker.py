"""The worker side of the ``ray`` executor: one Ray task runs one experiment, isolated.

:func:`experiment_task` rests its GPU for the thermal gap, runs the experiment in a
fresh subprocess (:func:`~llenergymeasure.study.isolation.run_isolated`) into a scratch
folder, and returns the folder's files with the typed outcome and where it ran. While it
runs it sends the run's events (phase, progress, countdowns) and a heartbeat every
second to the driver's :class:`EventSink`, so that the driver's live table is the local
executor's, and a worker that goes quiet is noticed within seconds. Nothing assumes a
filesystem shared with the driver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import PreflightError
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.isolation import ChildTarget, RunLimits, RunOutcome, run_isolated
from llenergymeasure.study.manifest import Placement
from llenergymeasure.system.gpus import list_gpus

__all__ = [
    "HEARTBEAT_S",
    "RAY_EXTRA",
    "EventSink",
    "Rests",
    "WorkerReport",
    "experiment_task",
    "import_ray",
    "rest_owed_s",
]

RAY_EXTRA = "llenergymeasure[ray]"
HEARTBEAT_S = 1.0  # how often a worker tells the driver it is alive
_LAST_WORD_S = 5.0  # how long a finished task waits for the sink to take its last events

# Slot (``<node>/gpu:<uuid or id>`` or ``<node>/cpu``) -> (when its last run ended, on the
# node's clock; that run's cycle).
Rests = dict[str, tuple[float, int]]
RunKey = tuple[int, int]


def import_ray() -> ModuleType:
    """The ``ray`` module; PreflightError naming the extra when it is not installed."""
    try:
        return importlib.import_module("ray")
    except ImportError as err:
        raise PreflightError(
            [f"the ray executor needs Ray, which is not installed: pip install '{RAY_EXTRA}'"],
            hint="or run the study here with --executor local",
        ) from err


class EventSink:
    """A Ray actor on the driver's side: what the workers said since the driver last asked.

    Workers call :meth:`add` and :meth:`beat` without waiting for an answer; the driver
    calls :meth:`drain`. Times are the actor's own, so clocks of other nodes never mix.
    """

    def __init__(self) -> None:
        self._events: list[tuple[int, int, dict[str, Any]]] = []
        self._heard_at: dict[RunKey, float] = {}

    def add(self, index: int, cycle: int, event: dict[str, Any]) -> None:
        """One event of the run of config ``index`` in ``cycle``."""
        self._events.append((index, cycle, event))
        self._heard_at[(index, cycle)] = time.monotonic()

    def beat(self, index: int, cycle: int) -> None:
        """The run's worker is alive."""
        self._heard_at[(index, cycle)] = time.monotonic()

    def drain(self) -> tuple[list[tuple[int, int, dict[str, Any]]], dict[RunKey, float]]:
        """The events since the last call, and how long ago each run's worker was heard."""
        events, self._events = self._events, []
        now = time.monotonic()
        return events, {key: now - at for key, at in self._heard_at.items()}


@dataclass(frozen=True)
class WorkerReport:
    """What one Ray task sends back to the driver.

    ``outcome`` is the isolated run's, with its result folder and log relative to the
    task's scratch folder; ``files`` holds every file of that scratch folder by its
    relative POSIX path. ``ended_at_unix`` is on the node's clock (for its GPUs' rests).
    """

    outcome: RunOutcome
    files: dict[str, bytes]
    placement: Placement
    slots: tuple[str, ...]
    ended_at_unix: float
    rested_s: float


class _News:
    """The worker's line to the driver: events as they come, and a heartbeat."""

    def __init__(self, sink: Any, index: int, cycle: int) -> None:
        self._sink, self._key = sink, (index, cycle)
        self._done = threading.Event()

    def send(self, event: RunEvent) -> None:
        if self._sink is not None:
            with contextlib.suppress(Exception):  # news must never fail the run
                self._sink.add.remote(*self._key, event.to_json())

    @contextlib.contextmanager
    def beating(self) -> Iterator[None]:
        if self._sink is None:
            yield
            return
        thread = threading.Thread(target=self._beat, name="llem-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._done.set()
            thread.join()
            # Calls from one caller run in order: once this one is answered, the sink holds
            # every event of the run before the driver learns that the run ended.
            with contextlib.suppress(Exception):
                import_ray().get(self._sink.beat.remote(*self._key), timeout=_LAST_WORD_S)

    def _beat(self) -> None:
        while not self._done.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):
                self._sink.beat.remote(*self._key)


def experiment_task(
    config: ExperimentConfig,
    *,
    index: int,
    cycle: int,
    limits: RunLimits,
    rests: Rests,
    experiment_gap_s: float,
    cycle_gap_s: float,
    events: Any = None,
    target: ChildTarget | None = None,
) -> WorkerReport:
    """The body of one Ray task: rest the GPU, run the experiment isolated, return its files.

    Runs in a Ray worker. ``events`` is the driver's :class:`EventSink` (None: no news).
    ``target`` replaces the experiment in the isolated child (tests). A cancel from the
    driver interrupts the wait, which kills the child's process group.
    """
    placement = _placement()
    slots = _slots(placement)
    news = _News(events, index, cycle)
    with news.beating():
        rested_s = rest_owed_s(slots, rests, cycle, experiment_gap_s, cycle_gap_s, now=time.time())
        if rested_s > 0:
            news.send(RunEvent("wait", "resting the GPU (thermal gap)", seconds=rested_s))
            time.sleep(rested_s)
        scratch = Path(tempfile.mkdtemp(prefix="llem-ray-"))
        try:
            with _no_main_script():
                outcome = run_isolated(
                    config,
                    study_dir=scratch,
                    index=index,
                    cycle=cycle,
                    limits=limits,
                    on_progress=news.send,
                    target=target,
                )
            ended_at_unix = time.time()
            files = _files(scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return WorkerReport(
        outcome=dataclasses.replace(
            outcome,
            result_dir=_relative(outcome.result_dir, scratch),
            log_path=_relative(outcome.log_path, scratch),
        ),
        files=files,
        placement=placement,
        slots=slots,
        ended_at_unix=ended_at_unix,
        rested_s=rested_s,
    )


def _placement() -> Placement:
    """Where this task runs: the node, and the GPUs Ray gave it."""
    context = import_ray().get_runtime_context()
    gpu_ids = tuple(str(i) for i in context.get_accelerator_ids().get("GPU", ()))
    return Placement(
        node_id=str(context.get_node_id()),
        host=socket.gethostname(),
        gpu_ids=gpu_ids,
        gpu_uuids=_gpu_uuids(gpu_ids),
    )


def _files(scratch: Path) -> dict[str, bytes]:
    return {
        path.relative_to(scratch).as_posix(): path.read_bytes()
        for path in sorted(scratch.rglob("*"))
        if path.is_file()
    }


@contextlib.contextmanager
def _no_main_script() -> Iterator[None]:
    """Hide the Ray worker's ``__main__`` while the experiment's child starts.

    multiprocessing re-runs the parent's main script in every child it starts; in a Ray
    worker that is Ray's worker script, which imports all of Ray (about a CPU second
    per run) for nothing: the child runs an importable function.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def rest_owed_s(
    slots: Sequence[str],
    rests: Mapping[str, tuple[float, int]],
    cycle: int,
    experiment_gap_s: float,
    cycle_gap_s: float,
    *,
    now: float,
) -> float:
    """How long a run of ``cycle`` must wait for its slots' thermal gaps (0 if none is owed)."""
    owed = 0.0
    for slot in slots:
        if slot in rests:
            ended, previous_cycle = rests[slot]
            gap = cycle_gap_s if previous_cycle != cycle else experiment_gap_s
            owed = max(owed, ended + gap - now)
    return owed


def _gpu_uuids(gpu_ids: Sequence[str]) -> tuple[str, ...]:
    """The NVML UUIDs of the GPUs Ray gave this task; empty when any cannot be named."""
    if not gpu_ids:
        return ()
    gpus, _, _ = list_gpus()
    by_index = {str(gpu.index): gpu.uuid for gpu in gpus}
    known = set(by_index.values())
    uuids = [by_index.get(i) or (i if i in known else None) for i in gpu_ids]
    return tuple(u for u in uuids if u is not None) if all(uuids) else ()


def _slots(placement: Placement) -> tuple[str, ...]:
    """The slots a run occupies: each of its GPUs, or its node's CPUs."""
    if not placement.gpu_ids:
        return (f"{placement.node_id}/cpu",)
    names = placement.gpu_uuids or placement.gpu_ids
    return tuple(f"{placement.node_id}/gpu:{name}" for name in names)


def _relative(path: Path | None, root: Path) -> Path | None:
    return None if path is None else path.relative_to(root)
