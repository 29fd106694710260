"""Opening result folders: a study, a single run, an experiment folder; listing a root."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llenergymeasure import run_experiment
from llenergymeasure.config.loading import UserConfig
from llenergymeasure.errors import ResultError
from llenergymeasure.results.collection import (
    discover,
    is_result_set,
    load_runs,
    open_results,
    tally_warnings,
)
from llenergymeasure.results.listing import describe

TINY = {
    "engine": "fake",
    "task": {"dataset": {"n_prompts": 2}, "max_output_tokens": 2},
    "measurement": {"energy_sampler": "estimate", "warmup": {"enabled": False}},
}


def _manifest(study: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((study / "manifest.json").read_text())


def test_a_study_folder_opens_with_every_planned_run(gpu_study: Path) -> None:
    results = open_results(gpu_study)
    manifest = _manifest(gpu_study)
    assert results.kind == "study"
    assert results.name == manifest["name"]
    assert results.design_hash == manifest["design_hash"]
    assert {(e.index, e.cycle, e.status) for e in results.entries} == {
        (e["index"], e["cycle"], e["status"]) for e in manifest["entries"]
    }
    completed = {e["result"] for e in manifest["entries"] if e["status"] == "completed"}
    assert {e.folder.name for e in results.completed if e.folder} == completed
    assert results.n_failed == sum(e["status"] == "failed" for e in manifest["entries"]) > 0
    assert results.study is not None  # study_result.json was read


def test_the_manifest_file_opens_its_study(gpu_study: Path) -> None:
    assert open_results(gpu_study / "manifest.json").entries == open_results(gpu_study).entries


def test_runs_load_in_index_and_cycle_order_with_traces_on_request(gpu_study: Path) -> None:
    results = open_results(gpu_study)
    runs = load_runs(results)
    keys = [(r.entry.index, r.entry.cycle) for r in runs]
    assert keys == sorted(keys) and len(keys) == len(results.completed)
    assert all(not r.result.timeseries for r in runs)
    traced = load_runs(results, traces=True)
    assert all(r.result.timeseries for r in traced)
    for run in runs:
        on_disk = json.loads((run.entry.folder / "result.json").read_text())  # type: ignore[operator]
        assert run.result.experiment_id == on_disk["experiment_id"]


def test_an_experiment_folder_or_its_result_file_is_a_one_run_set(gpu_study: Path) -> None:
    folder = next(p for p in sorted(gpu_study.iterdir()) if (p / "result.json").is_file())
    for path in (folder, folder / "result.json"):
        results = open_results(path)
        assert results.kind == "run"
        (entry,) = results.entries
        assert entry.folder == folder and entry.completed
        assert (
            entry.config_hash
            == json.loads((folder / "result.json").read_text())["measurement_config_hash"]
        )


def test_a_single_run_folder_opens_and_lists_next_to_a_study(
    gpu_study: Path, tmp_path: Path
) -> None:
    root = tmp_path / "results"
    study = shutil.copytree(gpu_study, root / gpu_study.name)
    result = run_experiment(TINY, output_dir=root, user_config=UserConfig())
    (run_dir,) = [p for p in root.iterdir() if p != study]
    (root / "not-results").mkdir()
    (root / "damaged_20200101T000000Z").mkdir()
    (root / "damaged_20200101T000000Z" / "manifest.json").write_text("{", encoding="utf-8")

    single = open_results(run_dir)
    assert single.kind == "run" and single.name == run_dir.name
    assert single.created_at == result.window.started_at
    listed = discover(root)
    # newest first: the single run was made after the study; junk and damage are skipped
    assert [s.path for s in listed] == [run_dir, study]
    assert not is_result_set(root / "not-results")


def test_describe_sums_the_energy_of_the_completed_runs(gpu_study: Path) -> None:
    results = open_results(gpu_study)
    listing = describe(results)
    runs = load_runs(results)
    assert listing.models == tuple(dict.fromkeys(r.result.model.name for r in runs))
    assert listing.engines == ("fake",)
    totals = [r.result.energy.total_j for r in runs]
    assert None not in totals
    assert listing.total_energy_j == pytest.approx(sum(t for t in totals if t is not None))
    assert listing.n_energy_unknown == 0 and listing.n_unreadable == 0


def test_a_missing_result_of_a_completed_run_is_an_error_naming_it(
    gpu_study: Path, tmp_path: Path
) -> None:
    study = shutil.copytree(gpu_study, tmp_path / "study")
    victim = open_results(study).completed[0].folder
    assert victim is not None
    shutil.rmtree(victim)
    with pytest.raises(ResultError, match=f"no result at .*{victim.name}"):
        load_runs(open_results(study))


def test_paths_that_hold_no_results_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match="no results at"):
        open_results(tmp_path / "nowhere")
    with pytest.raises(ResultError, match="neither a study folder nor a run folder"):
        open_results(tmp_path)
    with pytest.raises(ResultError, match="no results folder"):
        discover(tmp_path / "nowhere")
    (tmp_path / "manifest.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ResultError, match="unreadable manifest"):
        open_results(tmp_path)


def test_describe_counts_unreadable_result_files_instead_of_failing(
    gpu_study: Path, tmp_path: Path
) -> None:
    study = shutil.copytree(gpu_study, tmp_path / "study")
    victim = open_results(study).completed[0].folder
    assert victim is not None
    (victim / "result.json").write_text("{", encoding="utf-8")
    listing = describe(open_results(study))
    assert listing.n_unreadable == 1
    assert listing.total_energy_j is not None  # the other runs still count


def test_warnings_are_tallied_once_per_run_with_the_first_runs_text(gpu_study: Path) -> None:
    runs = load_runs(open_results(gpu_study))
    tallies = tally_warnings(runs)
    codes = [t.code for t in tallies]
    assert len(codes) == len(set(codes)) and codes
    for tally in tallies:
        having = [r for r in runs if any(w.code == tally.code for w in r.result.warnings)]
        assert tally.n_runs == len(having)
        first = next(w for w in having[0].result.warnings if w.code == tally.code)
        assert (tally.message, tally.remedy) == (first.message, first.remedy)
    # in order of first appearance
    seen = [w.code for r in runs for w in r.result.warnings]
    assert codes == sorted(set(seen), key=seen.index)
