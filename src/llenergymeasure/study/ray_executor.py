"""The ``ray`` executor: a study's runs as Ray tasks, one per GPU of a cluster (DESIGN §2.6, §6).

The process that runs the study (the driver) keeps the spine of ``study/run.py`` and
stays the only writer of the manifest and of the study folder. Each run becomes a Ray
task asking for the GPUs its engine needs (one CPU slot when it needs none), so runs on
different GPUs and nodes proceed side by side while no GPU is shared by two of them.
Inside the task the experiment runs as under the local executor, in a fresh isolated
subprocess (:func:`~llenergymeasure.study.isolation.run_isolated`), but into a scratch
folder on the worker; the task sends the folder's files back as bytes with the typed
outcome and where it ran, and the driver writes them into the study folder. Nothing
assumes a filesystem shared by the nodes.

- **Gaps per GPU**: a task rests on its GPU until ``experiment_gap_s`` (``cycle_gap_s``
  after a run of another cycle) has passed since that GPU's last run of this session,
  timed on the node's own clock. The thermal floor and the baseline are taken by the
  experiment itself, so on the node that runs it.
- **Lost workers**: a Ray worker or node lost mid-run makes the attempt ``crashed``,
  with Ray's reason; the run is retried up to ``max_retries`` times (Ray places the
  retry wherever a GPU is free; a dead node gets none). A failing experiment is a
  ``failed`` outcome and is not retried, as under the local executor.
- **Shared CPU packages**: runs whose windows overlapped on one node cannot separate
  their package-wide CPU and DRAM readings; those readings are flagged ``shared``
  (``energy.details.shared`` and a ``shared_cpu_energy`` warning), never attributed
  silently. The per-process CPU estimate is not affected.

Ray is imported here only when a study runs on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from threading import Event
from types import ModuleType, TracebackType
from typing import Any, Protocol

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import PreflightError, StudyError
from llenergymeasure.records.atomic import atomic_write, atomic_write_text
from llenergymeasure.records.files import create_unique_dir
from llenergymeasure.records.result import ExperimentResult, MeasurementWarning
from llenergymeasure.study.isolation import ChildTarget, RunOutcome, log_path, run_isolated
from llenergymeasure.study.manifest import Ledger, ManifestEntry, Placement
from llenergymeasure.study.models import StudyProtocol, StudyStatus
from llenergymeasure.study.reporter import StudyReporter
from llenergymeasure.system.gpus import list_gpus

__all__ = [
    "RAY_EXTRA",
    "SHARED_CPU_WARNING",
    "Breaker",
    "RayExecutor",
    "WorkerReport",
    "experiment_task",
    "gpus_per_run",
    "import_ray",
    "ray_executor_for",
]

RAY_EXTRA = "llenergymeasure[ray]"
SHARED_CPU_WARNING = "shared_cpu_energy"

_POLL_S = 0.2  # how often the driver checks for finished runs and the stop event
_CANCEL_WAIT_S = 10.0  # after a stop, how long the workers get to kill their experiments
_MAX_REASON = 300
# Energy sources that attribute CPU energy to the measuring process alone; every other
# source of a cpu/dram domain reads a whole package.
_PER_PROCESS_SOURCES = frozenset({"estimate"})
_PACKAGE_KINDS = ("cpu", "dram")

# Slot (``<node>/gpu:<uuid or id>`` or ``<node>/cpu``) -> (when its last run ended, on the
# node's clock; that run's cycle).
Rests = dict[str, tuple[float, int]]


class Breaker(Protocol):
    """The study's circuit breaker (``study/run.py``): a pause owed, and outcomes counted."""

    def pause(self) -> tuple[float, str]: ...

    def record(self, completed: bool) -> bool: ...


def import_ray() -> ModuleType:
    """The ``ray`` module; PreflightError naming the extra when it is not installed."""
    try:
        return importlib.import_module("ray")
    except ImportError as err:
        raise PreflightError(
            [f"the ray executor needs Ray, which is not installed: pip install '{RAY_EXTRA}'"],
            hint="or run the study here with --executor local",
        ) from err


def gpus_per_run(config: ExperimentConfig, setting: int | None, *, cluster_has_gpus: bool) -> int:
    """The GPUs one run of ``config`` asks for: the setting, else the engine's parallel size.

    With no setting, a cluster without GPUs gets CPU runs (0).
    """
    if setting is not None:
        return setting
    if not cluster_has_gpus:
        return 0
    if config.engine == "vllm" and config.vllm is not None:
        args = config.vllm.engine
        return (args.tensor_parallel_size or 1) * (args.pipeline_parallel_size or 1)
    if config.engine == "tensorrt" and config.tensorrt is not None:
        return config.tensorrt.tensor_parallel_size or 1
    return 1


def ray_executor_for(execution: object) -> RayExecutor | None:
    """The ray executor a ``study_execution:`` block asks for; None for the local executor."""
    if getattr(execution, "executor", "local") != "ray":
        return None
    return RayExecutor(
        address=getattr(execution, "address", None),
        max_retries=getattr(execution, "max_retries", 1),
        gpus_per_run=getattr(execution, "gpus_per_run", None),
    )


# ------------------------------------------------------------------ worker side


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


def experiment_task(
    config: ExperimentConfig,
    *,
    index: int,
    cycle: int,
    timeout_s: float,
    rests: Rests,
    experiment_gap_s: float,
    cycle_gap_s: float,
    target: ChildTarget | None = None,
) -> WorkerReport:
    """The body of one Ray task: rest the GPU, run the experiment isolated, return its files.

    Runs in a Ray worker. ``target`` replaces the experiment in the isolated child (tests).
    A cancel from the driver interrupts the wait, which kills the child's process group.
    """
    ray = import_ray()
    context = ray.get_runtime_context()
    gpu_ids = tuple(str(i) for i in context.get_accelerator_ids().get("GPU", ()))
    placement = Placement(
        node_id=str(context.get_node_id()),
        host=socket.gethostname(),
        gpu_ids=gpu_ids,
        gpu_uuids=_gpu_uuids(gpu_ids),
    )
    slots = _slots(placement)
    rested_s = rest_owed_s(slots, rests, cycle, experiment_gap_s, cycle_gap_s, now=time.time())
    if rested_s > 0:
        time.sleep(rested_s)
    scratch = Path(tempfile.mkdtemp(prefix="llem-ray-"))
    try:
        with _no_main_script():
            outcome = run_isolated(
                config,
                study_dir=scratch,
                index=index,
                cycle=cycle,
                timeout_s=timeout_s,
                target=target,
            )
        ended_at_unix = time.time()
        files = {
            path.relative_to(scratch).as_posix(): path.read_bytes()
            for path in sorted(scratch.rglob("*"))
            if path.is_file()
        }
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


# ------------------------------------------------------------------ driver side


@dataclass(frozen=True)
class _Running:
    entry: ManifestEntry
    n_gpus: int
    submitted_at: float


class RayExecutor:
    """Runs a study's runs as Ray tasks and gathers their files into the study folder.

    Use it as a context manager: entering joins the cluster at ``address`` (``auto``,
    ``ray://head:10001``, ``host:port``; None = ``$RAY_ADDRESS``, else a Ray started on
    this machine for the study), or uses the Ray this process already joined; leaving
    stops only a Ray it started. ``gpus_per_run`` None asks each run for its engine's
    parallel size (1 GPU unless tensor/pipeline parallel), or a CPU slot on a cluster
    without GPUs. ``target`` replaces the experiment in the isolated child (tests).
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        max_retries: int = 1,
        gpus_per_run: int | None = None,
        target: ChildTarget | None = None,
    ) -> None:
        self.address = address
        self.max_retries = max_retries
        self.gpus_per_run = gpus_per_run
        self._target = target
        self._ray: Any = None
        self._task: Any = None
        self._started_ray = False

    def __enter__(self) -> RayExecutor:
        ray = import_ray()
        if not ray.is_initialized():
            try:
                ray.init(**self._init_kwargs())
            except Exception as err:  # Ray raises several types for an unreachable cluster
                where = self.address or os.environ.get("RAY_ADDRESS") or "this machine"
                raise StudyError(
                    f"cannot start or join the Ray cluster at {where}: {_one_line(err)}",
                    hint="start one with `ray start --head`, or check --address",
                ) from err
            self._started_ray = True
        self._ray = ray
        self._task = ray.remote(experiment_task)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False
        self._ray = self._task = None

    def prepare(self, configs: Sequence[ExperimentConfig]) -> bool:
        """Check that every run fits the cluster; True when any asks for a GPU.

        Raises StudyError when a run asks for more GPUs than the cluster has (or it has
        no CPU), before the study makes its folder. The default gaps depend on the answer.
        """
        gpus, cpus = self._cluster()
        needs = {gpus_per_run(c, self.gpus_per_run, cluster_has_gpus=gpus > 0) for c in configs}
        if cpus < 1 or any(n > gpus for n in needs):
            raise StudyError(
                f"the Ray cluster has {gpus:g} GPUs and {cpus:g} CPUs, and a run asks for "
                f"{max(needs, default=0)} GPUs and 1 CPU",
                hint="add nodes, or set study_execution.gpus_per_run (0 runs on CPU slots)",
            )
        return any(n > 0 for n in needs)

    def run(
        self,
        ledger: Ledger,
        entries: Sequence[ManifestEntry],
        configs: Mapping[str, ExperimentConfig],
        protocol: StudyProtocol,
        *,
        reporter: StudyReporter,
        stop: Event,
        wait: Callable[[float], object],
        breaker: Breaker,
    ) -> StudyStatus | None:
        """Run ``entries`` on the cluster; the study's status if it ended early, else None.

        As many runs are in flight as the cluster has slots for, started in planned
        order. A stop (or Ctrl-C) cancels the runs in flight and records them interrupted.
        """
        if self._ray is None:
            raise StudyError("the ray executor is not open; use it in a `with` block")
        return _Session(self, ledger, configs, protocol, reporter, stop, wait, breaker).run(entries)

    def _init_kwargs(self) -> dict[str, Any]:
        # Worker output stays in the runs' logs, not in the live table.
        kwargs: dict[str, Any] = {
            "address": self.address,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
        }
        if self.address is None and not os.environ.get("RAY_ADDRESS"):
            kwargs["include_dashboard"] = False  # a Ray of our own: nobody will look at it
        return kwargs

    def _cluster(self) -> tuple[float, float]:
        """(GPUs, CPUs) of the nodes alive now."""
        resources = self._ray.cluster_resources()
        return float(resources.get("GPU", 0.0)), float(resources.get("CPU", 0.0))

    def _submit(
        self, config: ExperimentConfig, entry: ManifestEntry, n_gpus: int, **kwargs: Any
    ) -> Any:
        task = self._task.options(
            num_gpus=n_gpus,
            num_cpus=1,
            max_retries=0,  # the driver retries, so that each lost attempt is recorded
            name=f"llem {entry.index:03d}/c{entry.cycle}",
        )
        return task.remote(
            config, index=entry.index, cycle=entry.cycle, target=self._target, **kwargs
        )


class _Session:
    """One call of :meth:`RayExecutor.run`: what is pending, in flight, retried and rested."""

    def __init__(
        self,
        executor: RayExecutor,
        ledger: Ledger,
        configs: Mapping[str, ExperimentConfig],
        protocol: StudyProtocol,
        reporter: StudyReporter,
        stop: Event,
        wait: Callable[[float], object],
        breaker: Breaker,
    ) -> None:
        self._executor = executor
        self._ray = executor._ray
        self._errors: Any = importlib.import_module("ray.exceptions")
        self._ledger = ledger
        self._configs = configs
        self._protocol = protocol
        self._reporter = reporter
        self._stop = stop
        self._wait = wait
        self._breaker = breaker
        self._pending: deque[ManifestEntry] = deque()
        self._in_flight: dict[Any, _Running] = {}
        self._retried: dict[tuple[str, int], int] = {}
        self._rests: Rests = {}
        self._shared = _SharedCpu()
        has_gpus = executor._cluster()[0] > 0
        self._n_gpus = {
            h: gpus_per_run(c, executor.gpus_per_run, cluster_has_gpus=has_gpus)
            for h, c in configs.items()
        }

    def run(self, entries: Sequence[ManifestEntry]) -> StudyStatus | None:
        self._pending.extend(entries)
        status: StudyStatus | None = None
        try:
            while status is None and (self._pending or self._in_flight):
                if self._stop.is_set():
                    return "interrupted"
                self._fill()
                status = self._collect()
        finally:
            self._cancel()
        return status

    def _fill(self) -> None:
        """Start pending runs while slots are free (one probe at a time after a breaker trip)."""
        pause_s, reason = self._breaker.pause()
        if pause_s > 0:
            if self._in_flight:  # a run still in flight may complete and reset the breaker
                return
            self._reporter.waiting(pause_s, reason)
            self._wait(pause_s)
            if self._pending and not self._stop.is_set():
                self._start(self._pending.popleft())
            return
        gpus, cpus = self._executor._cluster()
        while self._pending:
            n_gpus = self._n_gpus[self._pending[0].config_hash]
            used_gpus = sum(r.n_gpus for r in self._in_flight.values())
            fits = used_gpus + n_gpus <= gpus and len(self._in_flight) + 1 <= cpus
            if self._in_flight and not fits:
                return  # Ray would queue it; wait here, so that its GPU's rest is known
            self._start(self._pending.popleft())

    def _start(self, entry: ManifestEntry) -> None:
        entry = self._ledger.start(entry)
        self._reporter.run_started(entry.label, entry.index, entry.cycle)
        protocol = self._protocol
        ref = self._executor._submit(
            self._configs[entry.config_hash],
            entry,
            self._n_gpus[entry.config_hash],
            timeout_s=protocol.experiment_timeout_s,
            rests=dict(self._rests),
            experiment_gap_s=protocol.experiment_gap_s,
            cycle_gap_s=protocol.cycle_gap_s,
        )
        self._in_flight[ref] = _Running(entry, self._n_gpus[entry.config_hash], time.monotonic())

    def _collect(self) -> StudyStatus | None:
        """Record the next run to end (waiting up to a poll interval for one)."""
        ready, _ = self._ray.wait(list(self._in_flight), num_returns=1, timeout=_POLL_S)
        for ref in ready:
            running = self._in_flight.pop(ref)
            try:
                report: WorkerReport = self._ray.get(ref)
            except self._errors.TaskCancelledError:
                self._interrupted(running, "interrupted: the Ray task was cancelled")
                return "interrupted"
            except self._errors.RayError as err:
                if self._lost(running, err):
                    continue
                return "circuit_breaker" if self._breaker.record(False) else None
            outcome = self._record(running, report)
            if outcome.status == "interrupted":
                return "interrupted"
            if self._breaker.record(outcome.status == "completed"):
                return "circuit_breaker"
        return None

    def _record(self, running: _Running, report: WorkerReport) -> RunOutcome:
        """Write the run's files into the study folder and its transition into the manifest."""
        entry = running.entry
        study_dir = self._ledger.study_dir
        outcome = report.outcome
        result_dir = None
        log = log_path(study_dir, entry.index, entry.cycle)
        log.parent.mkdir(exist_ok=True)  # as the local executor leaves it, even when empty
        if outcome.log_path is not None:
            _append(log, report.files.get(outcome.log_path.as_posix(), b""))
        if outcome.result_dir is not None:
            result_dir = _write_folder(study_dir, outcome.result_dir, report.files)
            try:
                self._shared.add(report.placement, result_dir)
            except (OSError, ValueError) as err:  # a result this version cannot read back
                note = f"--- shared CPU energy not checked: {type(err).__name__}: {_one_line(err)}"
                _append(log, f"{note}\n".encode())
        outcome = dataclasses.replace(
            outcome, result_dir=result_dir, log_path=log if log.is_file() else None
        )
        for slot in report.slots:
            self._rests[slot] = (report.ended_at_unix, entry.cycle)
        finished = self._ledger.finish(entry, outcome, placement=report.placement)
        self._reporter.run_finished(finished)
        return outcome

    def _lost(self, running: _Running, err: BaseException) -> bool:
        """Record an attempt whose Ray task was lost; True when the run is retried."""
        entry = running.entry
        used = self._retried.get(entry.key, 0)
        retry = used < self._executor.max_retries
        reason = f"crashed: the Ray task was lost ({type(err).__name__}: {_one_line(err)})"
        note = f"; retrying ({used + 1} of {self._executor.max_retries})" if retry else ""
        log = log_path(self._ledger.study_dir, entry.index, entry.cycle)
        _append(log, f"--- attempt {entry.n_attempts}: {reason}{note}\n".encode())
        outcome = RunOutcome(
            "crashed", time.monotonic() - running.submitted_at, reason, log_path=log
        )
        finished = self._ledger.finish(entry, outcome)
        self._reporter.run_finished(finished)
        if retry:
            self._retried[entry.key] = used + 1
            self._pending.appendleft(finished)
        return retry

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
        for running in self._in_flight.values():
            self._interrupted(running, "interrupted: the study stopped and cancelled its Ray task")
        self._in_flight.clear()


# --------------------------------------------------------------- files and flags


def _write_folder(study_dir: Path, folder: Path, files: Mapping[str, bytes]) -> Path:
    """Write the files under ``folder`` (a scratch-relative path) into a new study sub-folder."""
    target = create_unique_dir(study_dir, folder.name)
    prefix = folder.as_posix() + "/"
    names = [name.removeprefix(prefix) for name in files if name.startswith(prefix)]
    # result.json last: its presence marks a complete experiment folder.
    for name in sorted(names, key=lambda n: (n == "result.json", n)):
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise StudyError(f"a Ray worker sent a file outside its result folder: {name}")
        path = target.joinpath(*relative.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_bytes(path, files[prefix + name])
    return target


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def _append(log: Path, data: bytes) -> None:
    """Append an attempt's log to the run's log in the study folder (attempts follow each other)."""
    if not data:
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        fh.write(data)


@dataclass(frozen=True)
class _Window:
    started_at: datetime
    ended_at: datetime
    folder: Path
    domains: tuple[str, ...]  # the package-wide cpu/dram domains it measured


class _SharedCpu:
    """Finds runs whose windows overlapped on one node and flags their package-wide readings.

    Each overlapping pair is found when the later of the two is added: by then the
    earlier one's window is known. The windows are on the node's clock, so only windows
    of the same node are compared.
    """

    def __init__(self) -> None:
        self._by_node: dict[str, list[_Window]] = {}

    def add(self, placement: Placement, folder: Path) -> None:
        result = ExperimentResult.model_validate_json((folder / "result.json").read_bytes())
        window = _Window(
            result.window.started_at,
            result.window.ended_at,
            folder,
            tuple(
                d.domain
                for d in result.energy.domains
                if d.domain.split(":")[0] in _PACKAGE_KINDS and d.source not in _PER_PROCESS_SOURCES
            ),
        )
        seen = self._by_node.setdefault(placement.node_id, [])
        overlapping = [
            w for w in seen if w.started_at < window.ended_at and window.started_at < w.ended_at
        ]
        seen.append(window)
        if overlapping and window.domains:
            _flag_shared(window, [w.folder.name for w in overlapping])
        for other in overlapping:
            if other.domains:
                _flag_shared(other, [folder.name])


def _flag_shared(window: _Window, others: Sequence[str]) -> None:
    """Mark the run's package-wide readings ``shared`` with the runs it overlapped."""
    file = window.folder / "result.json"
    result = ExperimentResult.model_validate_json(file.read_bytes())
    details = dict(result.energy.details)
    earlier = details.get("shared", {}).get("runs", []) if "shared" in details else []
    details["shared"] = {"domains": list(window.domains), "runs": sorted({*earlier, *others})}
    warnings = result.warnings
    if not any(w.code == SHARED_CPU_WARNING for w in warnings):
        warnings = (
            *warnings,
            MeasurementWarning(
                code=SHARED_CPU_WARNING,
                message=(
                    f"{', '.join(window.domains)} energy was read for the whole package while "
                    "other runs of this study measured on the same node "
                    "(energy.details.shared.runs); it is not this run's alone"
                ),
                remedy="compare GPU energy, or give each node one run at a time "
                "(start its Ray with --num-cpus 1) when CPU energy matters",
            ),
        )
    energy = result.energy.model_copy(update={"details": details})
    flagged = result.model_copy(update={"energy": energy, "warnings": warnings})
    atomic_write_text(file, flagged.model_dump_json(indent=2) + "\n")


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"
