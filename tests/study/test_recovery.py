"""Resume adopts what a crash left: unrecorded complete folders adopted, partial ones set aside.

The states a killed study leaves are made here directly (a finished study with its
manifest rewound), so every case is exact; ``tests/reliability`` kills real processes.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from study_helpers import make_plan, tiny

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.experiment.run import run_experiment
from llenergymeasure.records.files import write_experiment
from llenergymeasure.study.isolation import RunLimits, RunOutcome
from llenergymeasure.study.manifest import MANIFEST_FILE, Manifest
from llenergymeasure.study.models import HeadlineMetrics
from llenergymeasure.study.recovery import INCOMPLETE_DIR
from llenergymeasure.study.run import run_study


class InProcess:
    """A RunOne running the fake-engine experiment here, writing its folder as a child would."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(
        self,
        config: ExperimentConfig,
        *,
        study_dir: Path,
        index: int,
        cycle: int,
        limits: RunLimits,
        **_: Any,
    ) -> RunOutcome:
        self.calls.append((index, cycle))
        began = time.monotonic()
        result = run_experiment(config)
        folder = write_experiment(result, study_dir, index=index, cycle=cycle)
        metrics = HeadlineMetrics.of(result)
        return RunOutcome("completed", time.monotonic() - began, result_dir=folder, metrics=metrics)


def rewind(study_dir: Path, index: int, cycle: int) -> None:
    """Make the manifest say what it said before the run's end was recorded: running."""
    data = json.loads((study_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    for entry in data["entries"]:
        if (entry["index"], entry["cycle"]) == (index, cycle):
            entry.update(status="running", result=None, metrics=None, ended_at=None)
            entry.update(duration_s=None)
    data["status"] = "running"
    (study_dir / MANIFEST_FILE).write_text(json.dumps(data), encoding="utf-8")


def folder_of(study_dir: Path, index: int, cycle: int) -> Path:
    (found,) = study_dir.glob(f"{index:03d}_c{cycle}_*")
    return found


def top_level_runs(study_dir: Path) -> list[str]:
    return sorted(p.name[:6] for p in study_dir.iterdir() if p.name[:3].isdigit())


def finished_study(tmp_path: Path) -> tuple[Any, Path]:
    plan = make_plan([tiny(batch_size=b) for b in (1, 2, 3)], n_cycles=1)
    first = run_study(plan, results_root=tmp_path, run_one=InProcess())
    assert first.status == "completed"
    return plan, first.study_dir


def test_a_complete_unrecorded_folder_is_adopted_not_run_again(tmp_path: Path) -> None:
    plan, study_dir = finished_study(tmp_path)
    before = Manifest.load(study_dir).entries[1]
    rewind(study_dir, 2, 1)
    again = InProcess()
    outcome = run_study(plan, results_root=tmp_path, resume_dir=study_dir, run_one=again)
    assert again.calls == []
    assert outcome.status == "completed" and outcome.exit_code == 0
    entry = outcome.manifest.entries[1]
    assert entry.status == "completed" and entry.adopted
    assert entry.result == before.result and entry.metrics == before.metrics
    assert entry.n_attempts == 1
    assert not (study_dir / INCOMPLETE_DIR).exists()
    log = (study_dir / "logs" / "002_c1.log").read_text(encoding="utf-8")
    assert f"adopted {before.result}, complete but unrecorded" in log


def test_a_partial_folder_is_set_aside_and_its_run_redone(tmp_path: Path) -> None:
    plan, study_dir = finished_study(tmp_path)
    rewind(study_dir, 3, 1)
    partial = folder_of(study_dir, 3, 1)
    (partial / "result.json").unlink()  # killed while writing: result.json comes last
    again = InProcess()
    outcome = run_study(plan, results_root=tmp_path, resume_dir=study_dir, run_one=again)
    assert again.calls == [(3, 1)]
    assert outcome.status == "completed"
    assert (study_dir / INCOMPLETE_DIR / partial.name / "config.yaml").is_file()
    assert top_level_runs(study_dir) == ["001_c1", "002_c1", "003_c1"]
    entry = outcome.manifest.entries[2]
    assert entry.n_attempts == 2 and not entry.adopted
    assert (study_dir / str(entry.result) / "result.json").is_file()
    log = (study_dir / "logs" / "003_c1.log").read_text(encoding="utf-8")
    assert (
        f"moved {partial.name} to {INCOMPLETE_DIR}/{partial.name} (partial: no result.json)" in log
    )


def test_a_second_folder_of_a_completed_run_and_foreign_folders_are_set_aside(
    tmp_path: Path,
) -> None:
    plan, study_dir = finished_study(tmp_path)
    original = folder_of(study_dir, 1, 1)
    shutil.copytree(original, study_dir / f"{original.name}_1")  # a duplicate
    hash8 = original.name.rsplit("_", 1)[-1]
    foreign = study_dir / f"009_c1_elsewhere-fake_{hash8}"  # a run this study never planned
    shutil.copytree(original, foreign)
    other = folder_of(study_dir, 2, 1)
    rewind(study_dir, 2, 1)
    swapped = study_dir / other.name.replace("002_c1", "002_c1_x").rsplit("_", 1)[0]
    misnamed = study_dir / f"{swapped.name}_{hash8}"  # run 2's number, config 1's hash
    shutil.copytree(original, misnamed)
    again = InProcess()
    outcome = run_study(plan, results_root=tmp_path, resume_dir=study_dir, run_one=again)
    assert again.calls == []  # run 2 is adopted from its own folder
    assert outcome.manifest.entries[1].adopted
    aside = sorted(p.name for p in (study_dir / INCOMPLETE_DIR).iterdir())
    assert aside == sorted([f"{original.name}_1", foreign.name, misnamed.name])
    assert top_level_runs(study_dir) == ["001_c1", "002_c1", "003_c1"]


def test_a_result_of_another_config_under_the_right_name_is_not_adopted(tmp_path: Path) -> None:
    plan, study_dir = finished_study(tmp_path)
    rewind(study_dir, 2, 1)
    target = folder_of(study_dir, 2, 1)
    donor = folder_of(study_dir, 1, 1)
    shutil.copy(donor / "result.json", target / "result.json")  # config 1's result
    again = InProcess()
    outcome = run_study(plan, results_root=tmp_path, resume_dir=study_dir, run_one=again)
    assert again.calls == [(2, 1)]
    assert not outcome.manifest.entries[1].adopted
    assert (study_dir / INCOMPLETE_DIR / target.name).is_dir()
    log = (study_dir / "logs" / "002_c1.log").read_text(encoding="utf-8")
    assert "(its result is of another config)" in log
