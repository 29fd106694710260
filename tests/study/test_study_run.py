"""run_study end to end: real spawned children on the fake engine, gaps, breaker, resume."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import child_targets
import pytest
import yaml
from study_helpers import gone, make_plan, tiny

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import expand_study
from llenergymeasure.errors import StudyError
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.isolation import RunLimits, RunOutcome, run_isolated
from llenergymeasure.study.manifest import Manifest, ManifestEntry
from llenergymeasure.study.models import HeadlineMetrics, StudyPlanLike, StudyResult
from llenergymeasure.study.run import BREAKER_PAUSE_S, run_study

EXPERIMENT_DIR = re.compile(r"^(\d{3})_c(\d+)_.+-fake_[0-9a-f]{8}$")
STUDY_DIR = re.compile(r"^unit-study_\d{8}T\d{6}Z(_\d+)?$")


class Recorder:
    """A StudyReporter that remembers every event; optionally stops after n runs."""

    def __init__(self, stop: threading.Event | None = None, stop_after: int = 0) -> None:
        self.started: list[tuple[str, int, int]] = []
        self.finished: list[ManifestEntry] = []
        self.steps: list[str] = []
        self.waits: list[tuple[float, str]] = []
        self.notes: list[str] = []
        self._stop = stop
        self._stop_after = stop_after

    def run_started(self, label: str, index: int, cycle: int) -> None:
        self.started.append((label, index, cycle))

    def progress(self, index: int, cycle: int, event: RunEvent) -> None:
        if event.kind != "phase":
            return
        self.steps.append(event.text)
        if event.text == "hanging" and self._stop is not None:
            self._stop.set()

    def note(self, message: str) -> None:
        self.notes.append(message)

    def run_finished(self, entry: ManifestEntry) -> None:
        self.finished.append(entry)
        if self._stop is not None and len(self.finished) == self._stop_after:
            self._stop.set()

    def waiting(self, seconds: float, reason: str) -> None:
        self.waits.append((seconds, reason))


def grid() -> list[ExperimentConfig]:
    """A 2 x 2 grid: batch size x token latency."""
    return [tiny(batch_size=b, token_latency_ms=t) for b in (1, 2) for t in (1, 2)]


def experiment_pairs(study_dir: Path) -> list[tuple[int, int]]:
    pairs = []
    for folder in study_dir.iterdir():
        match = EXPERIMENT_DIR.match(folder.name)
        if match:
            assert (folder / "result.json").is_file(), folder
            pairs.append((int(match[1]), int(match[2])))
    return sorted(pairs)


def test_a_2x2_grid_in_2_cycles_runs_end_to_end(tmp_path: Path) -> None:
    reporter = Recorder()
    sleeps: list[float] = []
    outcome = run_study(
        make_plan(grid(), n_cycles=2),
        results_root=tmp_path,
        reporter=reporter,
        sleep=sleeps.append,
    )
    assert outcome.status == "completed" and outcome.exit_code == 0
    assert STUDY_DIR.match(outcome.study_dir.name)
    assert outcome.study_dir.parent == tmp_path
    manifest = Manifest.load(outcome.study_dir)
    assert manifest.status == "completed"
    assert [(e.index, e.cycle, e.status) for e in manifest.entries] == [
        (i, c, "completed") for c in (1, 2) for i in (1, 2, 3, 4)
    ]
    expected = sorted((i, c) for i in (1, 2, 3, 4) for c in (1, 2))
    assert experiment_pairs(outcome.study_dir) == expected
    for entry in manifest.entries:
        assert entry.result is not None
        assert (outcome.study_dir / entry.result / "result.json").is_file()
        assert entry.metrics is not None and entry.metrics.output_tokens_per_s > 0
    # On the CPU the gaps default to 0: nothing waits.
    assert sleeps == [] and reporter.waits == []
    assert [(i, c) for _, i, c in reporter.started] == [
        (e.index, e.cycle) for e in manifest.entries
    ]
    assert "measuring" in reporter.steps
    study_yaml = yaml.safe_load((outcome.study_dir / "study.yaml").read_text(encoding="utf-8"))
    assert len(study_yaml["experiments"]) == 4
    result = StudyResult.model_validate_json(
        (outcome.study_dir / "study_result.json").read_text(encoding="utf-8")
    )
    assert result == outcome.result
    assert result.summary.n_planned == result.summary.n_completed == 8
    assert len(result.aggregates) == 4
    for aggregate in result.aggregates:
        assert aggregate.n_completed == 2
        assert aggregate.output_tokens_per_s.n == 2
        assert aggregate.output_tokens_per_s.ci95_half_width is not None
    assert len(result.files) == 2 + 8
    assert all((outcome.study_dir / f).is_file() for f in result.files)


def test_a_failing_experiment_is_recorded_and_the_study_goes_on(tmp_path: Path) -> None:
    configs = [tiny(), tiny(prefill_latency_ms=child_targets.FAIL_LATENCY_MS), tiny(batch_size=2)]
    outcome = run_study(
        make_plan(configs),
        results_root=tmp_path,
        run_one=functools.partial(run_isolated, target=child_targets.fail_marked),
    )
    assert outcome.status == "failed" and outcome.exit_code == 1
    statuses = [e.status for e in outcome.manifest.entries]
    assert statuses == ["completed", "failed", "completed"]
    failed = outcome.manifest.entries[1]
    assert failed.error == "RuntimeError: scripted failure for this config"
    assert failed.log == "logs/002_c1.log"
    assert "Traceback" in (outcome.study_dir / failed.log).read_text(encoding="utf-8")
    assert outcome.result.summary.n_failed == 1
    assert experiment_pairs(outcome.study_dir) == [(1, 1), (3, 1)]


def test_stop_after_the_second_run_then_resume_finishes_exactly_the_rest(
    tmp_path: Path,
) -> None:
    plan = make_plan(grid()[:2], n_cycles=2)
    run_one = functools.partial(run_isolated, target=child_targets.fake_energy)
    stop = threading.Event()
    first = run_study(
        plan,
        results_root=tmp_path,
        reporter=Recorder(stop, stop_after=2),
        run_one=run_one,
        stop_event=stop,
    )
    assert first.status == "interrupted" and first.exit_code == 130
    assert [e.status for e in Manifest.load(first.study_dir).entries] == [
        "completed",
        "completed",
        "pending",
        "pending",
    ]
    assert first.result.summary.n_skipped == 2

    reporter = Recorder()
    second = run_study(
        plan, results_root=tmp_path, resume_dir=first.study_dir, reporter=reporter, run_one=run_one
    )
    assert second.status == "completed" and second.study_dir == first.study_dir
    assert [(i, c) for _, i, c in reporter.started] == [(1, 2), (2, 2)]
    assert experiment_pairs(first.study_dir) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert all(e.n_attempts == 1 for e in second.manifest.entries)
    assert len(list(tmp_path.iterdir())) == 1  # no second study folder
    # The scripted 10 W sampler gives every run an energy figure.
    assert second.result.summary.total_energy_j is not None
    assert second.result.summary.total_energy_j > 0
    for aggregate in second.result.aggregates:
        assert aggregate.j_per_output_token.n == 2
        assert aggregate.j_per_output_token.mean is not None


def test_ctrl_c_during_a_gap_stops_the_study(tmp_path: Path) -> None:
    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    outcome = run_study(
        make_plan(grid()[:2], n_cycles=2, experiment_gap_s=5.0),
        results_root=tmp_path,
        sleep=sleep,
    )
    assert outcome.status == "interrupted" and outcome.exit_code == 130
    assert [e.status for e in outcome.manifest.entries] == ["completed", *["pending"] * 3]
    assert Manifest.load(outcome.study_dir).status == "interrupted"
    assert (outcome.study_dir / "study_result.json").is_file()


def test_a_stop_while_a_child_runs_marks_that_entry_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(child_targets.PID_FILE_ENV, str(tmp_path / "pids"))
    stop = threading.Event()
    outcome = run_study(
        make_plan([tiny(), tiny(batch_size=2)]),
        results_root=tmp_path / "results",
        reporter=Recorder(stop),  # sets the stop once the child reports "hanging"
        run_one=functools.partial(run_isolated, target=child_targets.hang_with_grandchild),
        stop_event=stop,
    )
    assert outcome.status == "interrupted"
    assert [e.status for e in outcome.manifest.entries] == ["interrupted", "pending"]
    assert outcome.manifest.entries[0].error is not None


def test_the_circuit_breaker_pauses_probes_and_aborts(tmp_path: Path) -> None:
    reporter = Recorder()
    sleeps: list[float] = []
    outcome = run_study(
        make_plan([tiny(batch_size=b) for b in (1, 2, 3, 4)], max_consecutive_failures=2),
        results_root=tmp_path,
        reporter=reporter,
        run_one=functools.partial(run_isolated, target=child_targets.always_fail),
        sleep=sleeps.append,
    )
    assert outcome.status == "circuit_breaker" and outcome.exit_code == 1
    assert Manifest.load(outcome.study_dir).status == "circuit_breaker"
    assert [e.status for e in outcome.manifest.entries] == ["failed"] * 3 + ["pending"]
    assert sleeps == [BREAKER_PAUSE_S]  # one pause, before the probe (run 3)
    assert "circuit breaker" in reporter.waits[0][1]


# ---- spine logic with an in-process stand-in for run_isolated (no subprocess needed)


class Scripted:
    """A RunOne stand-in: returns the scripted statuses in turn, then 'completed'."""

    def __init__(self, *statuses: str) -> None:
        self.statuses = list(statuses)
        self.calls: list[tuple[int, int]] = []

    def __call__(
        self,
        config: ExperimentConfig,
        *,
        study_dir: Path,
        index: int,
        cycle: int,
        limits: RunLimits,
        on_progress: object = None,
        stop_event: object = None,
    ) -> RunOutcome:
        self.calls.append((index, cycle))
        status = self.statuses.pop(0) if self.statuses else "completed"
        if status == "completed":
            metrics = HeadlineMetrics(
                output_tokens_per_s=1.0,
                j_per_output_token=None,
                energy_j=None,
                energy_method=None,
                window_s=0.1,
            )
            return RunOutcome("completed", 0.1, metrics=metrics)
        return RunOutcome(status, 0.1, f"{status}: scripted")  # type: ignore[arg-type]


def test_gpu_defaults_wait_between_experiments_and_longer_between_cycles(tmp_path: Path) -> None:
    sleeps: list[float] = []
    reporter = Recorder()
    run_study(
        make_plan([tiny(), tiny(batch_size=2)], n_cycles=2),
        results_root=tmp_path,
        reporter=reporter,
        run_one=Scripted(),
        sleep=sleeps.append,
        on_gpu=True,
    )
    assert sleeps == [60.0, 300.0, 60.0]
    assert [reason for _, reason in reporter.waits] == [
        "thermal gap between experiments",
        "thermal gap between cycles",
        "thermal gap between experiments",
    ]


def test_a_successful_probe_resets_the_breaker(tmp_path: Path) -> None:
    sleeps: list[float] = []
    outcome = run_study(
        make_plan([tiny(batch_size=b) for b in range(1, 7)], max_consecutive_failures=2),
        results_root=tmp_path,
        run_one=Scripted("failed", "crashed", "completed", "timed_out", "completed"),
        sleep=sleeps.append,
    )
    assert outcome.status == "failed"
    assert sleeps == [BREAKER_PAUSE_S]
    assert [e.status for e in outcome.manifest.entries] == [
        "failed",
        "crashed",
        "completed",
        "timed_out",
        "completed",
        "completed",
    ]


def test_resume_reruns_failed_and_stale_entries_only(tmp_path: Path) -> None:
    plan = make_plan([tiny(batch_size=b) for b in (1, 2, 3)])
    first = run_study(plan, results_root=tmp_path, run_one=Scripted("completed", "crashed"))
    assert first.status == "failed"
    again = Scripted()
    second = run_study(plan, results_root=tmp_path, resume_dir=first.study_dir, run_one=again)
    assert again.calls == [(2, 1)]
    assert second.status == "completed"
    assert [e.n_attempts for e in second.manifest.entries] == [1, 2, 1]


def test_resume_refuses_a_changed_design(tmp_path: Path) -> None:
    first = run_study(make_plan([tiny()]), results_root=tmp_path, run_one=Scripted("failed"))
    before = (first.study_dir / "manifest.json").read_bytes()
    changed = make_plan([tiny(batch_size=2)], design_hash="f" * 16)
    with pytest.raises(StudyError) as info:
        run_study(changed, results_root=tmp_path, resume_dir=first.study_dir, run_one=Scripted())
    assert info.value.message == (
        "the study file changed since this study started (design hash "
        f"{'f' * 16} != {'d' * 16}); start a new study instead of --resume"
    )
    assert (first.study_dir / "manifest.json").read_bytes() == before


def test_resume_of_a_folder_without_a_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"no manifest\.json"):
        run_study(
            make_plan([tiny()]), results_root=tmp_path, resume_dir=tmp_path, run_one=Scripted()
        )


def test_study_result_json_is_written_with_the_protocol(tmp_path: Path) -> None:
    plan = make_plan([tiny()], n_cycles=1, experiment_gap_s=7.0, experiment_timeout_s=42.0)
    outcome = run_study(plan, results_root=tmp_path, run_one=Scripted(), on_gpu=True)
    data = json.loads((outcome.study_dir / "study_result.json").read_text(encoding="utf-8"))
    assert data["protocol"] == {
        "n_cycles": 1,
        "experiment_order": "interleave",
        "experiment_gap_s": 7.0,
        "cycle_gap_s": 300.0,
        "experiment_timeout_s": 42.0,
        "max_consecutive_failures": 10,
        "experiment_silence_timeout_s": None,
        "fail_fast": False,
        "study_timeout_s": None,
    }
    assert data["status"] == "completed"
    assert Counter(e.status for e in outcome.manifest.entries) == {"completed": 1}


def test_the_parent_never_imports_an_engine_library(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from study_helpers import make_plan, tiny\n"
        "from llenergymeasure.study import run_study\n"
        "outcome = run_study(make_plan([tiny()]), results_root=Path(sys.argv[2]))\n"
        "assert outcome.status == 'completed', outcome.manifest\n"
        # pynvml may be read (pure Python, no CUDA context) to know whether GPUs need gaps
        "heavy = ('torch', 'transformers', 'vllm')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_plan_from_the_sweep_expansion_runs_and_its_study_yaml_reexpands(
    tmp_path: Path,
) -> None:
    study = {
        "engine": "fake",
        "task": {"dataset": {"n_prompts": 2}, "max_output_tokens": 2},
        "measurement": {"energy_sampler": "estimate", "warmup": {"enabled": False}},
        "sweep": {"fake.batch_size": [1, 2, 3]},
        "study_execution": {"n_cycles": 2, "experiment_order": "shuffle"},
    }
    plan: StudyPlanLike = expand_study(study, base_dir=tmp_path, name="sweep")
    run_one = Scripted()
    outcome = run_study(plan, results_root=tmp_path, run_one=run_one)
    assert outcome.status == "completed"
    assert run_one.calls == [(r.config_index + 1, r.cycle) for r in plan.runs()]
    assert outcome.manifest.design_hash == plan.design_hash
    assert [e.label for e in outcome.manifest.entries] == [
        plan.labels[r.config_index] for r in plan.runs()
    ]
    assert outcome.result.protocol.experiment_order == "shuffle"
    saved = yaml.safe_load((outcome.study_dir / "study.yaml").read_text(encoding="utf-8"))
    assert expand_study(saved, base_dir=tmp_path, name="x").design_hash == plan.design_hash


def test_an_inconsistent_plan_is_refused_before_any_folder_is_made(tmp_path: Path) -> None:
    plan = make_plan([tiny(), tiny()])  # the same resolved config twice
    with pytest.raises(StudyError, match="same resolved config"):
        run_study(plan, results_root=tmp_path / "results", run_one=Scripted())
    assert not (tmp_path / "results").exists()


_CTRL_C_SCRIPT = """
import functools, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import child_targets
from study_helpers import make_plan, tiny
from llenergymeasure.study import NullStudyReporter, run_isolated, run_study

class Announce(NullStudyReporter):
    def progress(self, index, cycle, event):
        if event.kind == "phase":
            print(event.text, flush=True)

outcome = run_study(
    make_plan([tiny(), tiny(batch_size=2)]),
    results_root=Path(sys.argv[2]),
    reporter=Announce(),
    run_one=functools.partial(run_isolated, target=child_targets.hang_with_grandchild),
)
print(outcome.study_dir, flush=True)
sys.exit(outcome.exit_code)
"""


def test_a_real_ctrl_c_to_the_terminal_group_stops_the_study_with_130(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    script = subprocess.Popen(
        [sys.executable, "-c", _CTRL_C_SCRIPT, str(Path(__file__).parent), str(tmp_path / "r")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, child_targets.PID_FILE_ENV: str(pid_file)},
        start_new_session=True,  # its own group, as a shell gives a foreground job
    )
    try:
        assert script.stdout is not None
        while (line := script.stdout.readline()) and line.strip() != "hanging":
            pass
        os.killpg(script.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        out, err = script.communicate(timeout=30)
    finally:
        if script.poll() is None:
            script.kill()
    assert script.returncode == 130, err
    manifest = Manifest.load(Path(out.strip().splitlines()[-1]))
    assert manifest.status == "interrupted"
    assert [e.status for e in manifest.entries] == ["interrupted", "pending"]
    assert all(gone(int(pid)) for pid in pid_file.read_text().split())
