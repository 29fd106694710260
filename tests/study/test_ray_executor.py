"""The ray executor on a local Ray cluster with fake GPUs: parallel runs, lost workers, resume.

One Ray cluster per module (3 CPUs, 3 fake GPUs); each test runs a small study on it,
mostly of the fake engine. Ray gives a fake GPU's id in CUDA_VISIBLE_DEVICES like a
real one; NVML cannot name it, so those runs have GPU ids but no UUIDs.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import child_targets
import psutil
import pytest
from study_helpers import gone, make_plan, tiny

from llenergymeasure.config.study import StudyExecution, expand_study
from llenergymeasure.errors import ConfigError, PreflightError, StudyError
from llenergymeasure.study.control import BREAKER_PAUSE_S
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.manifest import Manifest, ManifestEntry
from llenergymeasure.study.ray_executor import (
    SHARED_CPU_WARNING,
    RayExecutor,
    gpus_per_run,
    rest_owed_s,
)
from llenergymeasure.study.reporter import NullStudyReporter
from llenergymeasure.study.run import run_study

HERE = Path(__file__).resolve().parent
EXPERIMENT_DIR = re.compile(r"^(\d{3})_c(\d+)_.+-fake_[0-9a-f]{8}$")
N_GPUS = 3
# A lost worker is in the live table within this long (Ray notices a dead worker at once;
# a quiet one is flagged after SILENT_WORKER_S).
LOST_WITHIN_S = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local Ray with 3 CPUs and 3 fake GPUs; its workers can import the test targets."""
    ray = pytest.importorskip("ray")
    empty = tmp_path_factory.mktemp("ray-user") / "config.yaml"
    empty.write_text("{}\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        # Workers inherit the environment Ray starts with.
        paths = [str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]
        env.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
        env.setenv("LLEM_USER_CONFIG", str(empty))
        ray.init(
            num_cpus=N_GPUS,
            num_gpus=N_GPUS,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    yield ray
    ray.shutdown()


def window(folder: Path) -> tuple[datetime, datetime]:
    data = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    return (
        datetime.fromisoformat(data["window"]["started_at"]),
        datetime.fromisoformat(data["window"]["ended_at"]),
    )


def overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def shape(study_dir: Path) -> dict[str, Any]:
    """What a study folder holds, with names and values left out."""
    manifest = json.loads((study_dir / "manifest.json").read_text(encoding="utf-8"))
    result = json.loads((study_dir / "study_result.json").read_text(encoding="utf-8"))
    folders = sorted(p for p in study_dir.iterdir() if EXPERIMENT_DIR.match(p.name))
    return {
        "top": sorted(p.name for p in study_dir.iterdir() if p not in folders),
        "manifest": sorted(manifest),
        "entry": {tuple(sorted(e)) for e in manifest["entries"]},
        "study_result": sorted(result),
        "folders": [(f.name[:6], sorted(p.name for p in f.iterdir())) for f in folders],
        "result": {
            tuple(sorted(json.loads((f / "result.json").read_text(encoding="utf-8"))))
            for f in folders
        },
    }


# ----------------------------------------------------------------- on the cluster


@pytest.mark.ray
def test_runs_go_one_per_gpu_in_parallel_resting_each_gpu_and_match_the_local_shape(
    cluster: Any, tmp_path: Path
) -> None:
    # 3 configs x 2 cycles on 3 fake GPUs; each window lasts 2-4 s, long enough to overlap.
    configs = [tiny(batch_size=b, token_latency_ms=1000) for b in (1, 2, 3)]
    plan = make_plan(configs, n_cycles=2, experiment_gap_s=0.5, cycle_gap_s=1.5)
    outcome = run_study(plan, results_root=tmp_path / "ray", executor=RayExecutor())
    assert outcome.status == "completed", outcome.manifest
    entries = outcome.manifest.entries
    assert all(e.status == "completed" and e.n_attempts == 1 for e in entries)
    node_ids = {e.placement.node_id for e in entries if e.placement}
    assert node_ids == {cluster.get_runtime_context().get_node_id()}
    runs = []
    for entry in entries:
        assert entry.placement is not None and entry.result is not None
        assert len(entry.placement.gpu_ids) == 1
        assert entry.placement.gpu_uuids == ()  # fake GPUs: NVML cannot name them
        runs.append((entry, window(outcome.study_dir / entry.result)))
    # Runs proceeded side by side, never two on one GPU at once.
    pairs = list(itertools.combinations(runs, 2))
    assert any(overlap(a[1], b[1]) for a, b in pairs)
    for (a, wa), (b, wb) in pairs:
        if overlap(wa, wb):
            assert a.placement and b.placement and a.placement.gpu_ids != b.placement.gpu_ids
    # Each GPU rested between its runs: 0.5 s within a cycle, 1.5 s across cycles.
    by_gpu: dict[tuple[str, ...], list[tuple[ManifestEntry, tuple[datetime, datetime]]]] = {}
    for entry, span in runs:
        assert entry.placement is not None
        by_gpu.setdefault(entry.placement.gpu_ids, []).append((entry, span))
    for on_one_gpu in by_gpu.values():
        on_one_gpu.sort(key=lambda run: run[1][0])
        for (before, a), (after, b) in itertools.pairwise(on_one_gpu):
            gap_s = 1.5 if before.cycle != after.cycle else 0.5
            assert (b[0] - a[1]).total_seconds() >= gap_s
    assert outcome.result.protocol.experiment_gap_s == 0.5
    # The CPU estimate is attributed per process: nothing is flagged shared.
    for entry, _ in runs:
        data = json.loads((outcome.study_dir / f"{entry.result}/result.json").read_text())
        assert "shared" not in data["energy"]["details"]

    local = run_study(plan, results_root=tmp_path / "local")
    assert local.status == "completed"
    assert all(e.placement is None for e in local.manifest.entries)
    assert shape(outcome.study_dir) == shape(local.study_dir)


@pytest.mark.ray
def test_each_worker_run_locks_the_gpu_ray_gave_it(cluster: Any, tmp_path: Path) -> None:
    # three runs side by side on three (simulated) GPUs: each holds its own GPU's lock,
    # by UUID, while it measures (the target fails the run otherwise)
    measurement = tiny().measurement.model_copy(
        update={"energy_sampler": "nvml", "min_window_s": 0.2}
    )
    configs = [
        tiny(token_latency_ms=20, batch_size=b).model_copy(update={"measurement": measurement})
        for b in range(1, N_GPUS + 1)
    ]
    plan = make_plan(configs, n_cycles=1, experiment_gap_s=0, cycle_gap_s=0)
    outcome = run_study(
        plan,
        results_root=tmp_path,
        executor=RayExecutor(target=child_targets.simulated_gpu_locks),
    )
    entries = outcome.manifest.entries
    assert outcome.status == "completed", [(e.status, e.error) for e in entries]
    gpu_ids = sorted(e.placement.gpu_ids for e in entries if e.placement is not None)
    assert gpu_ids == [(str(i),) for i in range(N_GPUS)]


@pytest.mark.ray
def test_package_wide_cpu_readings_of_overlapping_runs_are_flagged_shared(
    cluster: Any, tmp_path: Path
) -> None:
    # The scripted sampler reads `cpu:0` the way RAPL does: for the whole package.
    # Windows of about 6 s, started side by side, overlap.
    configs = [tiny(batch_size=1, token_latency_ms=1500, prefill_latency_ms=p) for p in (1, 2, 3)]
    outcome = run_study(
        make_plan(configs, experiment_gap_s=0, cycle_gap_s=0),
        results_root=tmp_path,
        executor=RayExecutor(target=child_targets.fake_energy),
    )
    assert outcome.status == "completed", outcome.manifest
    folders = [outcome.study_dir / str(e.result) for e in outcome.manifest.entries]
    spans = {f.name: window(f) for f in folders}
    for folder in folders:
        mine = spans[folder.name]
        others = sorted(n for n, s in spans.items() if n != folder.name and overlap(s, mine))
        data = json.loads((folder / "result.json").read_text(encoding="utf-8"))
        codes = [w["code"] for w in data["warnings"]]
        if others:
            assert data["energy"]["details"]["shared"] == {"domains": ["cpu:0"], "runs": others}
            assert codes.count(SHARED_CPU_WARNING) == 1
        else:
            assert "shared" not in data["energy"]["details"]
            assert SHARED_CPU_WARNING not in codes
    assert any(overlap(a, b) for a, b in itertools.combinations(spans.values(), 2))


def _running_worker_of_run_1(done: threading.Event) -> tuple[psutil.Process, list[int]] | None:
    """The Ray worker running run 1/c1 once its fork server and child are up, with them."""
    deadline = time.monotonic() + 120
    while not done.is_set() and time.monotonic() < deadline:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            title = " ".join(proc.info["cmdline"] or [])
            if not title.startswith("ray::llem 001/c1"):  # the run long enough to be hit
                continue
            try:
                below = [p.pid for p in proc.children(recursive=True)]
            except psutil.Error:
                continue
            if len(below) >= 2:  # the fork server and the experiment's child
                return proc, below
        time.sleep(0.2)
    return None


def _kill_a_running_worker(
    done: threading.Event, killed: list[tuple[int, list[int]]], killed_at: list[float]
) -> None:
    """SIGKILL the Ray worker running run 1/c1, noting when."""
    found = _running_worker_of_run_1(done)
    if found is not None:
        proc, below = found
        proc.kill()
        killed_at.append(time.monotonic())
        killed.append((proc.pid, below))


class Seen(NullStudyReporter):
    """A StudyReporter keeping every event of every run, with when it came."""

    def __init__(self) -> None:
        self.events: list[tuple[int, int, RunEvent, float]] = []
        self.finished: list[tuple[ManifestEntry, float]] = []

    def progress(self, index: int, cycle: int, event: RunEvent) -> None:
        self.events.append((index, cycle, event, time.monotonic()))

    def run_finished(self, entry: ManifestEntry) -> None:
        self.finished.append((entry, time.monotonic()))

    def phases(self, index: int, cycle: int) -> list[str]:
        return [
            e.text for i, c, e, _ in self.events if (i, c) == (index, cycle) and e.kind == "phase"
        ]


@pytest.mark.ray
def test_a_worker_killed_mid_run_is_recorded_crashed_and_retried(
    cluster: Any, tmp_path: Path
) -> None:
    # The first run's window lasts about 2.8 s: long enough to be killed in.
    configs = [tiny(batch_size=1, token_latency_ms=700), tiny(batch_size=2)]
    done = threading.Event()
    killed: list[tuple[int, list[int]]] = []
    killed_at: list[float] = []
    killer = threading.Thread(target=_kill_a_running_worker, args=(done, killed, killed_at))
    killer.start()
    seen = Seen()
    try:
        outcome = run_study(
            make_plan(configs, experiment_gap_s=0, cycle_gap_s=0),
            results_root=tmp_path,
            executor=RayExecutor(max_retries=1),
            reporter=seen,
        )
    finally:
        done.set()
        killer.join()
    assert killed, "no running Ray worker was found to kill"
    assert outcome.status == "completed", outcome.manifest
    retried = [e for e in outcome.manifest.entries if e.n_attempts == 2]
    assert len(retried) == 1
    assert all(e.n_attempts == 1 for e in outcome.manifest.entries if e not in retried)
    log = (outcome.study_dir / str(retried[0].log)).read_text(encoding="utf-8")
    assert "--- attempt 1: crashed: the Ray task was lost (" in log
    assert "retrying (1 of 1)" in log
    # The live table heard of the loss within seconds of the kill.
    (lost_at,) = [at for entry, at in seen.finished if entry.status == "crashed"]
    assert lost_at - killed_at[0] < LOST_WITHIN_S
    # The worker's experiment went with it: no orphan keeps running.
    assert all(gone(pid) for pid in killed[0][1])
    assert len([p for p in outcome.study_dir.iterdir() if EXPERIMENT_DIR.match(p.name)]) == 2


@pytest.mark.ray
def test_workers_send_each_runs_phases_and_progress_to_the_driver(
    cluster: Any, tmp_path: Path
) -> None:
    configs = [tiny(batch_size=b, token_latency_ms=300) for b in (1, 2)]
    seen = Seen()
    outcome = run_study(
        make_plan(configs, experiment_gap_s=0, cycle_gap_s=0),
        results_root=tmp_path,
        executor=RayExecutor(),
        reporter=seen,
    )
    assert outcome.status == "completed", outcome.manifest
    for index in (1, 2):
        phases = seen.phases(index, 1)
        assert (
            phases.index("pre-flight") < phases.index("loading model") < phases.index("measuring")
        )
        window = [e for i, _, e, _ in seen.events if i == index and e.kind == "progress"]
        assert window and all(e.total == 2 and e.text == "measuring" for e in window)
        assert window[-1].done == 2 and window[-1].n_output_tokens == 4  # tokens so far
        assert phases[-1] == "writing results"  # the last word arrives before the end


@pytest.mark.ray
def test_a_worker_that_goes_quiet_is_flagged_in_the_table_and_the_run_goes_on(
    cluster: Any, tmp_path: Path
) -> None:
    # Run 1's window lasts about 8 s; its worker is stopped (not killed) for a while.
    configs = [tiny(batch_size=1, token_latency_ms=2000), tiny(batch_size=2)]
    seen = Seen()
    done = threading.Event()

    def pause_the_worker() -> None:
        # Once the worker has been heard (its run is measuring), it goes quiet.
        deadline = time.monotonic() + 120
        while "measuring" not in seen.phases(1, 1) and time.monotonic() < deadline:
            time.sleep(0.1)
        found = _running_worker_of_run_1(done)
        if found is None:
            return
        worker = found[0]
        worker.suspend()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _alerted(seen, 1):
                time.sleep(0.2)
        finally:
            worker.resume()

    pauser = threading.Thread(target=pause_the_worker)
    pauser.start()
    try:
        outcome = run_study(
            make_plan(configs, experiment_gap_s=0, cycle_gap_s=0),
            results_root=tmp_path,
            executor=RayExecutor(),
            reporter=seen,
        )
    finally:
        done.set()
        pauser.join()
    assert _alerted(seen, 1), seen.events
    assert outcome.status == "completed", outcome.manifest
    assert all(e.n_attempts == 1 for e in outcome.manifest.entries)


def _alerted(seen: Seen, index: int) -> bool:
    return any(
        i == index and e.kind == "alert" and e.text.startswith("no news from its Ray worker")
        for i, _, e, _ in seen.events
    )


@pytest.mark.ray
def test_a_stop_cancels_the_runs_in_flight_and_local_resume_finishes_the_rest(
    cluster: Any, tmp_path: Path
) -> None:
    configs = [tiny(batch_size=b, token_latency_ms=400) for b in (1, 2, 3)]
    plan = make_plan(configs, n_cycles=2, experiment_gap_s=0, cycle_gap_s=0)
    stop = threading.Event()

    class StopAfterTwo:
        finished = 0

        def run_started(self, label: str, index: int, cycle: int) -> None: ...

        def progress(self, index: int, cycle: int, event: object) -> None: ...

        def note(self, message: str) -> None: ...

        def waiting(self, seconds: float, reason: str) -> None: ...

        def run_finished(self, entry: ManifestEntry) -> None:
            self.finished += entry.status == "completed"
            if self.finished == 2:
                stop.set()

    first = run_study(
        plan,
        results_root=tmp_path,
        executor=RayExecutor(),
        reporter=StopAfterTwo(),
        stop_event=stop,
    )
    assert first.status == "interrupted" and first.exit_code == 130
    saved = Manifest.load(first.study_dir)
    assert saved.status == "interrupted"
    statuses = [e.status for e in saved.entries]
    assert "running" not in statuses
    assert 2 <= statuses.count("completed") < 6
    assert statuses.count("interrupted") >= 1  # cancelled in flight
    done_first = {e.key for e in saved.entries if e.status == "completed"}

    second = run_study(plan, results_root=tmp_path, resume_dir=first.study_dir)
    assert second.status == "completed"
    assert all(e.status == "completed" for e in second.manifest.entries)
    for entry in second.manifest.entries:
        ran_on_ray = entry.key in done_first
        assert (entry.placement is not None) == ran_on_ray
    folders = sorted(p.name for p in first.study_dir.iterdir() if EXPERIMENT_DIR.match(p.name))
    pairs = sorted((int(m[1]), int(m[2])) for m in map(EXPERIMENT_DIR.match, folders) if m)
    assert pairs == sorted((i, c) for i in (1, 2, 3) for c in (1, 2))  # one folder per run


class StopAfter(NullStudyReporter):
    """Sets ``stop`` once ``n`` runs have completed."""

    def __init__(self, n: int, stop: threading.Event) -> None:
        self.n, self.stop, self.finished = n, stop, 0

    def run_finished(self, entry: ManifestEntry) -> None:
        self.finished += entry.status == "completed"
        if self.finished >= self.n:
            self.stop.set()


@pytest.mark.ray
def test_a_time_budget_that_runs_out_cancels_the_runs_in_flight_and_exits_124(
    cluster: Any, tmp_path: Path
) -> None:
    # Windows of 6-12 s; the 3 s budget ends while all three first runs are in flight.
    configs = [tiny(batch_size=b, token_latency_ms=3000) for b in (1, 2, 3)]
    plan = make_plan(configs, n_cycles=2, experiment_gap_s=0, cycle_gap_s=0, study_timeout_s=3.0)
    outcome = run_study(plan, results_root=tmp_path, executor=RayExecutor())
    assert outcome.status == "timed_out" and outcome.exit_code == 124
    saved = Manifest.load(outcome.study_dir)
    assert saved.status == "timed_out" and saved.stop_reason is not None
    assert "ran out with runs still going" in saved.stop_reason
    statuses = [e.status for e in saved.entries]
    assert "running" not in statuses and "completed" not in statuses
    cancelled = [e for e in saved.entries if e.status == "interrupted"]
    assert len(cancelled) == 3  # the first wave, one run per GPU
    assert all("the study's time budget ran out" in (e.error or "") for e in cancelled)
    assert statuses.count("pending") == 3  # the second cycle never started


@pytest.mark.ray
def test_a_time_budget_without_room_for_the_next_run_starts_none(
    cluster: Any, tmp_path: Path
) -> None:
    configs = [tiny(batch_size=b, token_latency_ms=200) for b in (1, 2, 3)]
    stop = threading.Event()
    first = run_study(
        make_plan(configs, n_cycles=2, experiment_gap_s=0, cycle_gap_s=0),
        results_root=tmp_path,
        executor=RayExecutor(),
        reporter=StopAfter(1, stop),
        stop_event=stop,
    )
    assert first.status == "interrupted"
    before = {e.key: e for e in Manifest.load(first.study_dir).entries}
    shortest_s = min(e.duration_s or 0.0 for e in before.values() if e.status == "completed")
    folders = sorted(p.name for p in first.study_dir.iterdir())
    # A budget shorter than any run so far: no run can end in it, so none starts.
    budget_s = shortest_s / 2
    second = run_study(
        make_plan(configs, n_cycles=2, experiment_gap_s=0, cycle_gap_s=0, study_timeout_s=budget_s),
        results_root=tmp_path,
        resume_dir=first.study_dir,
        executor=RayExecutor(),
    )
    assert second.status == "timed_out" and second.exit_code == 124
    saved = Manifest.load(first.study_dir)
    assert saved.stop_reason is not None and "so no more runs start" in saved.stop_reason
    for entry in saved.entries:  # nothing was started: every entry is as the first left it
        assert entry.n_attempts == before[entry.key].n_attempts
        assert entry.status == before[entry.key].status or entry.status == "pending"
    assert sorted(p.name for p in first.study_dir.iterdir()) == folders


@pytest.mark.ray
def test_fail_fast_on_the_cluster_stops_at_the_first_failed_run_and_cancels_the_rest(
    cluster: Any, tmp_path: Path
) -> None:
    # The second config fails at once; the others' windows last 4-8 s.
    configs = [
        tiny(batch_size=1, token_latency_ms=1000),
        tiny(batch_size=2, prefill_latency_ms=child_targets.FAIL_LATENCY_MS),
        tiny(batch_size=3, token_latency_ms=2000),
    ]
    outcome = run_study(
        make_plan(configs, n_cycles=2, experiment_gap_s=0, cycle_gap_s=0, fail_fast=True),
        results_root=tmp_path,
        executor=RayExecutor(target=child_targets.fail_marked),
    )
    assert outcome.status == "fail_fast" and outcome.exit_code == 1
    saved = Manifest.load(outcome.study_dir)
    assert saved.status == "fail_fast" and saved.stop_reason is not None
    assert saved.stop_reason.startswith("fail-fast: run 2/c")
    assert "scripted failure" in saved.stop_reason
    statuses = [e.status for e in saved.entries]
    assert "running" not in statuses and statuses.count("completed") < len(statuses)
    assert set(statuses) <= {"completed", "failed", "interrupted", "pending"}
    assert {e.config_hash for e in saved.entries if e.status == "failed"} == {
        saved.entries[1].config_hash
    }


@pytest.mark.ray
def test_the_breaker_on_the_cluster_pauses_once_the_runs_in_flight_end_then_probes(
    cluster: Any, tmp_path: Path
) -> None:
    # Every run fails. The first wave (one run per GPU) was in flight when the breaker
    # tripped: those failures count, but the study stops only when the probe run fails.
    configs = [tiny(batch_size=b) for b in (1, 2, 3)]
    pauses: list[float] = []
    outcome = run_study(
        make_plan(
            configs, n_cycles=2, experiment_gap_s=0, cycle_gap_s=0, max_consecutive_failures=1
        ),
        results_root=tmp_path,
        executor=RayExecutor(target=child_targets.always_fail),
        sleep=pauses.append,
    )
    assert outcome.status == "circuit_breaker" and outcome.exit_code == 1
    saved = Manifest.load(outcome.study_dir)
    assert [e.status for e in saved.entries].count("failed") == 4
    assert [e.status for e in saved.entries].count("pending") == 2
    assert pauses == [BREAKER_PAUSE_S]
    assert saved.stop_reason is not None and "the probe run after the pause failed too" in (
        saved.stop_reason
    )


@pytest.mark.ray
def test_the_silence_watchdog_stops_a_silent_run_on_the_cluster(
    cluster: Any, tmp_path: Path
) -> None:
    outcome = run_study(
        make_plan([tiny()], experiment_silence_timeout_s=1.5),
        results_root=tmp_path,
        executor=RayExecutor(target=child_targets.silent_hang),
    )
    (entry,) = outcome.manifest.entries
    assert entry.status == "timed_out"
    assert entry.error is not None and "silent for 1.5 s" in entry.error
    assert entry.log is not None
    assert "in silent_hang" in (outcome.study_dir / entry.log).read_text(encoding="utf-8")


@pytest.mark.ray
def test_the_cli_resumes_a_local_study_on_the_cluster(cluster: Any, tmp_path: Path) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(
        "study_name: tiny\nengine: fake\n"
        "task: {dataset: {n_prompts: 2}, max_output_tokens: 2}\nfake: {token_latency_ms: 1}\n"
        "measurement: {warmup: {enabled: false}, energy_sampler: estimate}\n"
        "sweep: {fake.batch_size: [1, 2]}\n"
        "study_execution: {experiment_order: interleave}\n",
        encoding="utf-8",
    )
    address = cluster.get_runtime_context().gcs_address

    def llem(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "llenergymeasure", "run", "study.yaml", *args]
        return subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False
        )

    first = llem("--cycles", "1")
    assert first.returncode == 0, first.stderr
    plan_text = llem("--cycles", "2", "--executor", "ray", "--dry-run").stdout
    assert "executor ray (a Ray started here)" in " ".join(plan_text.split())
    second = llem("--cycles", "2", "--resume", "--address", address)
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    (study_dir,) = (tmp_path / "results").iterdir()
    entries = json.loads((study_dir / "manifest.json").read_text(encoding="utf-8"))["entries"]
    assert sorted((e["cycle"], e["placement"] is not None) for e in entries) == [
        (1, False),
        (1, False),
        (2, True),
        (2, True),
    ]
    assert all(e["status"] == "completed" and e["n_attempts"] == 1 for e in entries)


@pytest.mark.ray
def test_a_run_that_asks_for_more_gpus_than_the_cluster_has_is_refused_up_front(
    cluster: Any, tmp_path: Path
) -> None:
    with pytest.raises(StudyError, match=f"has {N_GPUS} GPUs .* asks for {N_GPUS + 1} GPUs"):
        run_study(
            make_plan([tiny()]),
            results_root=tmp_path / "results",
            executor=RayExecutor(gpus_per_run=N_GPUS + 1),
        )
    assert not (tmp_path / "results").exists()


@pytest.mark.ray
@pytest.mark.model
def test_a_small_study_of_the_bundled_model_runs_on_the_cluster(
    cluster: Any, tmp_path: Path
) -> None:
    study = {
        "study_name": "bundled",
        "task": {"model": "smollm2-135m", "dataset": {"n_prompts": 2}, "max_output_tokens": 4},
        "transformers": {"dtype": "float32"},
        "measurement": {"energy_sampler": "estimate", "warmup": {"n_warmup": 1}},
        "sweep": {"transformers.batch_size": [1, 2]},
        "study_execution": {"n_cycles": 1, "experiment_gap_s": 0, "cycle_gap_s": 0},
    }
    plan = expand_study(study, base_dir=tmp_path, name="bundled")
    outcome = run_study(plan, results_root=tmp_path, executor=RayExecutor())
    assert outcome.status == "completed", outcome.manifest
    for entry in outcome.manifest.entries:
        assert entry.placement is not None and len(entry.placement.gpu_ids) == 1
        data = json.loads((outcome.study_dir / f"{entry.result}/result.json").read_text())
        assert data["engine"] == "transformers"
        assert data["tokens"]["n_output_tokens"] > 0
        # no energy counter on this host: the CPU estimate, beside a null measured total
        assert data["energy"]["estimated"]["total_j"] > 0


# ---------------------------------------------------------------- without a cluster


def test_without_ray_the_ray_executor_names_the_extra_and_makes_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray shows
    with pytest.raises(PreflightError, match=re.escape("pip install 'llenergymeasure[ray]'")):
        run_study(make_plan([tiny()]), results_root=tmp_path / "results", executor=RayExecutor())
    assert not (tmp_path / "results").exists()


def test_the_cli_without_ray_says_which_extra_to_install(tmp_path: Path) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(
        "engine: fake\nsweep: {fake.batch_size: [1]}\nstudy_execution: {executor: ray}\n",
        encoding="utf-8",
    )
    code = (
        "import sys\nsys.modules['ray'] = None\n"
        "sys.argv = ['llem', 'run', 'study.yaml']\n"
        "from llenergymeasure.cli.app import run\nrun()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert "llenergymeasure[ray]" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def test_the_local_executor_never_imports_ray(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom pathlib import Path\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from study_helpers import make_plan, tiny\n"
        "from llenergymeasure.study import run_study\n"
        "outcome = run_study(make_plan([tiny()]), results_root=Path(sys.argv[2]))\n"
        "assert outcome.status == 'completed', outcome.manifest\n"
        "print('ray' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(HERE), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_a_manifest_written_before_placement_was_recorded_still_loads(tmp_path: Path) -> None:
    entry = {"index": 1, "label": "a", "config_hash": "h" * 16, "cycle": 1, "status": "pending"}
    old = {
        "schema_version": "1",
        "name": "old",
        "design_hash": "d" * 16,
        "status": "interrupted",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "entries": [entry],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(old), encoding="utf-8")
    assert Manifest.load(tmp_path).entries[0].placement is None


def test_the_study_execution_block_takes_the_ray_settings() -> None:
    execution = StudyExecution.model_validate(
        {"executor": "ray", "address": "auto", "max_retries": 2, "gpus_per_run": 0}
    )
    assert (execution.executor, execution.address) == ("ray", "auto")
    assert (execution.max_retries, execution.gpus_per_run) == (2, 0)
    assert StudyExecution().max_retries == 1 and StudyExecution().gpus_per_run is None
    study = {"engine": "fake", "sweep": {}, "study_execution": {"executor": "slurm"}}
    with pytest.raises(ConfigError, match="executor"):
        expand_study(study, base_dir=Path(), name="x")


def test_a_run_asks_for_its_engines_parallel_size_or_a_cpu_slot() -> None:
    from llenergymeasure.config.models import ExperimentConfig

    vllm = ExperimentConfig.model_validate(
        {"engine": "vllm", "vllm": {"engine": {"tensor_parallel_size": 2}}}
    )
    assert gpus_per_run(vllm, None, cluster_has_gpus=True) == 2
    assert gpus_per_run(tiny(), None, cluster_has_gpus=True) == 1
    assert gpus_per_run(tiny(), None, cluster_has_gpus=False) == 0
    assert gpus_per_run(vllm, 0, cluster_has_gpus=True) == 0


def test_the_rest_owed_is_per_slot_and_longer_across_cycles() -> None:
    rests = {"n/gpu:0": (100.0, 1), "n/gpu:1": (104.0, 1)}
    assert rest_owed_s(["n/gpu:0"], rests, 1, 5.0, 20.0, now=102.0) == pytest.approx(3.0)
    assert rest_owed_s(["n/gpu:0"], rests, 2, 5.0, 20.0, now=102.0) == pytest.approx(18.0)
    assert rest_owed_s(["n/gpu:0", "n/gpu:1"], rests, 1, 5.0, 20.0, now=102.0) == 7.0
    assert rest_owed_s(["n/gpu:2"], rests, 1, 5.0, 20.0, now=102.0) <= 0
    assert rest_owed_s(["n/gpu:0"], rests, 1, 5.0, 20.0, now=200.0) <= 0
