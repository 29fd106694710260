"""The ``ray`` executor: a study's runs as Ray tasks, one per GPU of a cluster (DESIGN §2.6, §6).

The process that runs the study (the driver) keeps the spine of ``study/run.py`` and
stays the only writer of the manifest and of the study folder. Each run becomes a Ray
task asking for the GPUs its engine needs (one CPU slot when it needs none), so runs on
different GPUs and nodes proceed side by side while no GPU is shared by two of them.
The task (``study/ray_worker.py``) runs the experiment as under the local executor, in a
fresh isolated subprocess, but into a scratch folder on the worker, and sends the
folder's files back; the driver writes them (``study/ray_files.py``).

- **Live news**: workers send each run's events (phase, progress, countdowns) and a
  heartbeat to an :class:`~llenergymeasure.study.ray_worker.EventSink` actor; the driver
  passes the events to the same reporter as the local executor, and a run whose worker
  has not been heard for ``SILENT_WORKER_S`` gets an alert in the table.
- **Gaps per GPU**: a task rests on its GPU until ``experiment_gap_s`` (``cycle_gap_s``
  after a run of another cycle) has passed since that GPU's last run of this session,
  timed on the node's own clock.
- **Lost workers**: a Ray worker or node lost mid-run makes the attempt ``crashed``,
  with Ray's reason; the run is retried up to ``max_retries`` times. A failing
  experiment is a ``failed`` outcome and is not retried, as under the local executor.
- **Stopping**: the run control (``study/control.py``) decides as for the local
  executor; when it stops the study, or on Ctrl-C, the runs in flight are cancelled
  and recorded ``interrupted``. Once the time budget leaves no room for the next run,
  no run starts and the runs in flight finish (or are stopped when the budget ends).

Ray is imported here only when a study runs on it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any

from llenergymeasure.config.execution import StudyExecution
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import StudyError
from llenergymeasure.study.control import Stop
from llenergymeasure.study.isolation import ChildTarget
from llenergymeasure.study.manifest import ManifestEntry
from llenergymeasure.study.ray_files import SHARED_CPU_WARNING
from llenergymeasure.study.ray_session import ExecutorCall, RaySession, one_line
from llenergymeasure.study.ray_worker import (
    RAY_EXTRA,
    EventSink,
    WorkerReport,
    experiment_task,
    import_ray,
    rest_owed_s,
)

__all__ = [
    "RAY_EXTRA",
    "SHARED_CPU_WARNING",
    "RayExecutor",
    "WorkerReport",
    "experiment_task",
    "gpus_per_run",
    "import_ray",
    "ray_executor_for",
    "rest_owed_s",
]


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


def ray_executor_for(execution: StudyExecution) -> RayExecutor | None:
    """The ray executor a ``study_execution:`` block asks for; None for the local executor."""
    if execution.executor != "ray":
        return None
    return RayExecutor(
        address=execution.address,
        max_retries=execution.max_retries,
        gpus_per_run=execution.gpus_per_run,
    )


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
        self._sink_class: Any = None
        self._started_ray = False

    def __enter__(self) -> RayExecutor:
        ray = import_ray()
        if not ray.is_initialized():
            try:
                ray.init(**self._init_kwargs())
            except Exception as err:  # Ray raises several types for an unreachable cluster
                where = self.address or os.environ.get("RAY_ADDRESS") or "this machine"
                raise StudyError(
                    f"cannot start or join the Ray cluster at {where}: {one_line(err)}",
                    hint="start one with `ray start --head`, or check --address",
                ) from err
            self._started_ray = True
        self._ray = ray
        self._task = ray.remote(experiment_task)
        # The sink takes no CPU slot: every slot stays free for a run.
        self._sink_class = ray.remote(num_cpus=0)(EventSink)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False
        self._ray = self._task = self._sink_class = None

    def prepare(self, configs: Sequence[ExperimentConfig]) -> bool:
        """Check that every run fits the cluster; True when any asks for a GPU.

        Raises StudyError when a run asks for more GPUs than the cluster has (or it has
        no CPU), before the study makes its folder. The default gaps depend on the answer.
        """
        gpus, cpus = self.cluster()
        needs = {gpus_per_run(c, self.gpus_per_run, cluster_has_gpus=gpus > 0) for c in configs}
        if cpus < 1 or any(n > gpus for n in needs):
            raise StudyError(
                f"the Ray cluster has {gpus:g} GPUs and {cpus:g} CPUs, and a run asks for "
                f"{max(needs, default=0)} GPUs and 1 CPU",
                hint="add nodes, or set study_execution.gpus_per_run (0 runs on CPU slots)",
            )
        return any(n > 0 for n in needs)

    def run(self, entries: Sequence[ManifestEntry], call: ExecutorCall) -> Stop | None:
        """Run ``entries`` on the cluster; a Stop if the study ended early, else None.

        As many runs are in flight as the cluster has slots for, started in planned
        order. A stop (or Ctrl-C) cancels the runs in flight and records them interrupted.
        """
        if self._ray is None:
            raise StudyError("the ray executor is not open; use it in a `with` block")
        has_gpus = self.cluster()[0] > 0
        n_gpus = {
            h: gpus_per_run(c, self.gpus_per_run, cluster_has_gpus=has_gpus)
            for h, c in call.configs.items()
        }
        sink = self._sink_class.remote()
        session = RaySession(self, call, n_gpus, sink)
        try:
            return session.run(entries)
        finally:
            with contextlib.suppress(Exception):
                self._ray.kill(sink)

    def cluster(self) -> tuple[float, float]:
        """(GPUs, CPUs) of the nodes alive now."""
        resources = self._ray.cluster_resources()
        return float(resources.get("GPU", 0.0)), float(resources.get("CPU", 0.0))

    def submit(
        self, config: ExperimentConfig, entry: ManifestEntry, n_gpus: int, **kwargs: Any
    ) -> Any:
        """Start one run as a Ray task; its object ref."""
        task = self._task.options(
            num_gpus=n_gpus,
            num_cpus=1,
            max_retries=0,  # the driver retries, so that each lost attempt is recorded
            name=f"llem {entry.index:03d}/c{entry.cycle}",
        )
        return task.remote(
            config, index=entry.index, cycle=entry.cycle, target=self._target, **kwargs
        )

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
