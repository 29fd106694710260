"""A full disk or a read-only results folder: one clear error, and what was written is kept.

The faults are injected at the OS seam every write goes through (``os.replace`` for the
rename that publishes a file, ``os.open``/``os.mkdir`` for creating one), so the code
under test runs unchanged. Tests run as root in CI, where chmod cannot make a folder
read-only; raising EROFS at the seam is what a read-only mount does.
"""

from __future__ import annotations

import errno
import io
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from threading import Event
from typing import Any

import pytest

from llenergymeasure.cli.app import main
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import expand_study
from llenergymeasure.errors import ResultError
from llenergymeasure.experiment.run import run_experiment
from llenergymeasure.records.files import load_result, write_experiment
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.isolation import RunLimits, RunOutcome
from llenergymeasure.study.manifest import Manifest
from llenergymeasure.study.models import HeadlineMetrics
from llenergymeasure.study.run import run_study

FAKE_RUN = [
    "run", "--engine", "fake", "--model", "smollm2-135m", "-n", "2",
    "--max-output-tokens", "2", "--energy", "estimate", "-q",
]  # fmt: skip
REAL_REPLACE = os.replace
REAL_OPEN = os.open
REAL_MKDIR = os.mkdir


def _cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def _assert_one_clear_error(code: int, stderr: str, *words: str) -> None:
    lines = stderr.splitlines()
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert lines and lines[0].startswith("error: cannot write results to "), stderr
    for word in words:
        assert word in lines[0], stderr
    assert len(lines) == 2 and lines[1].startswith("hint: "), stderr


def _disk_full_after(n_ok: int) -> Callable[..., None]:
    """An ``os.replace`` that publishes ``n_ok`` files, then fails like a full disk."""
    calls = [0]

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] > n_ok:
            raise OSError(errno.ENOSPC, "No space left on device")
        REAL_REPLACE(src, dst, **kwargs)

    return replace


def _disk_full_at_manifest_after_results(n_results: int) -> Callable[..., None]:
    """An ``os.replace`` that fails at the first manifest write after ``n_results`` results."""
    published = [0]

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        name = Path(dst).name
        if name == "manifest.json" and published[0] >= n_results:
            raise OSError(errno.ENOSPC, "No space left on device")
        REAL_REPLACE(src, dst, **kwargs)
        published[0] += name == "result.json"

    return replace


@contextmanager
def _read_only(root: Path) -> Iterator[None]:
    """Creating anything under ``root`` fails with EROFS, as on a read-only mount."""

    def under(path: Any, dir_fd: int | None) -> bool:
        full = Path(f"/proc/self/fd/{dir_fd}").readlink() / path if dir_fd else Path(path)
        return full.absolute().is_relative_to(root.absolute())

    def open_(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR) and under(path, dir_fd):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return REAL_OPEN(path, flags, mode, dir_fd=dir_fd)

    def mkdir(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        if under(path, dir_fd):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        REAL_MKDIR(path, mode, dir_fd=dir_fd)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "open", open_)
        patch.setattr(os, "mkdir", mkdir)
        yield


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ------------------------------------------------------------------- one experiment


def test_disk_full_on_the_first_write_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "replace", _disk_full_after(0))
    code, out, err = _cli([*FAKE_RUN, "--output", "results"])
    _assert_one_clear_error(code, err, "the disk is full")
    assert out == ""
    assert not [p for p in (tmp_path / "results").rglob("*.tmp")], "a temp file was left"


def test_disk_full_part_way_keeps_the_files_already_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _cli([*FAKE_RUN, "--output", "results"])[0] == 0  # an earlier result
    before = _files(tmp_path / "results")
    # config.yaml and environment.json are published, then the disk fills up
    monkeypatch.setattr(os, "replace", _disk_full_after(2))
    code, _, err = _cli([*FAKE_RUN, "--output", "results"])
    monkeypatch.setattr(os, "replace", REAL_REPLACE)
    _assert_one_clear_error(code, err, "the disk is full")
    after = _files(tmp_path / "results")
    assert {k: v for k, v in after.items() if k in before} == before  # earlier run intact
    new = sorted(set(after) - set(before))
    assert [Path(name).name for name in new] == ["config.yaml", "environment.json"], new
    assert not any(name.endswith(".tmp") for name in after)


def test_a_read_only_results_folder_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    with _read_only(tmp_path / "results"):
        code, out, err = _cli([*FAKE_RUN, "--output", "results"])
    _assert_one_clear_error(code, err, "read-only")
    assert out == ""
    assert list((tmp_path / "results").iterdir()) == []


# -------------------------------------------------------------------------- a study


def _run_here(
    config: ExperimentConfig,
    *,
    study_dir: Path,
    index: int,
    cycle: int,
    limits: RunLimits,
    on_progress: Callable[[RunEvent], None] | None = None,
    stop_event: Event | None = None,
) -> RunOutcome:
    """The experiment in this process (the parent's ledger is what is under test)."""
    began = time.monotonic()
    result = run_experiment(config)
    folder = write_experiment(result, study_dir, index=index, cycle=cycle)
    return RunOutcome(
        "completed",
        time.monotonic() - began,
        result_dir=folder,
        metrics=HeadlineMetrics.of(result),
    )


def _plan() -> Any:
    study = {
        "engine": "fake",
        "task": {"dataset": {"n_prompts": 2}, "max_output_tokens": 2},
        "measurement": {"energy_sampler": "estimate", "warmup": {"enabled": False}},
        "sweep": {"fake.batch_size": [1, 2]},
        "study_execution": {"n_cycles": 1, "experiment_order": "sequential"},
    }
    return expand_study(study, base_dir=Path(), name="disk")


def test_disk_full_mid_study_keeps_the_manifest_and_results_then_resume_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _plan()
    results = tmp_path / "results"
    # The disk fills up just as the parent records run 2's outcome.
    monkeypatch.setattr(os, "replace", _disk_full_at_manifest_after_results(2))
    with pytest.raises(ResultError) as info:
        run_study(plan, results_root=results, run_one=_run_here, on_gpu=False)
    monkeypatch.setattr(os, "replace", REAL_REPLACE)
    assert "the disk is full" in info.value.message and "manifest.json" in info.value.message
    (study_dir,) = results.iterdir()
    manifest = Manifest.load(study_dir)  # the last good manifest, whole
    status = {entry.index: entry.status for entry in manifest.entries}
    assert status == {1: "completed", 2: "running"}
    first = manifest.entries[0]
    assert first.result is not None
    assert load_result(study_dir / first.result).measurement_config_hash == first.config_hash
    assert not list(study_dir.rglob("*.tmp"))

    outcome = run_study(
        plan, results_root=results, resume_dir=study_dir, run_one=_run_here, on_gpu=False
    )
    assert outcome.status == "completed"
    # Run 2 wrote its folder before the disk filled: the resume adopts it, not redoes it.
    assert [e.n_attempts for e in outcome.manifest.entries] == [1, 1]
    assert [e.adopted for e in outcome.manifest.entries] == [False, True]
    assert outcome.manifest.entries[0].result == first.result  # the first run was kept


def test_a_read_only_results_folder_stops_a_study_before_any_run(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    ran: list[int] = []

    def run_one(config: ExperimentConfig, **kwargs: Any) -> RunOutcome:
        ran.append(kwargs["index"])
        return _run_here(config, **kwargs)

    with _read_only(results), pytest.raises(ResultError) as info:
        run_study(_plan(), results_root=results, run_one=run_one, on_gpu=False)
    assert "read-only" in info.value.message
    assert ran == []
    assert list(results.iterdir()) == []
