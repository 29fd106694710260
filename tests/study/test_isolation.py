"""run_isolated with real spawned children: every way a run can end is its own outcome."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import child_targets
import pytest
from study_helpers import Phases, gone, isolated, tiny

from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.isolation import log_path


def test_completed_run_writes_its_folder_and_reports_steps(tmp_path: Path) -> None:
    steps = Phases()
    outcome = isolated(tmp_path, 7, 2, on_progress=steps)
    assert outcome.status == "completed", outcome.message
    assert outcome.result_dir is not None
    assert outcome.result_dir.parent == tmp_path
    assert re.fullmatch(r"007_c2_.+-fake_[0-9a-f]{8}", outcome.result_dir.name)
    result = json.loads((outcome.result_dir / "result.json").read_text(encoding="utf-8"))
    assert result["tokens"]["n_output_tokens"] == 4
    assert outcome.metrics is not None
    assert outcome.metrics.output_tokens_per_s == result["throughput"]["output_tokens_per_s"]
    assert outcome.metrics.window_s == result["window"]["duration_s"]
    assert "measuring" in steps and steps.index("loading model") < steps.index("measuring")
    assert not log_path(tmp_path, 7, 2).exists()  # a quiet, successful run leaves no log


def test_the_windows_progress_reaches_the_parent_with_its_output_tokens(tmp_path: Path) -> None:
    events: list[RunEvent] = []
    two_batches = tiny(batch_size=1, token_latency_ms=300)  # 0.6 s each: two events
    outcome = isolated(tmp_path, config=two_batches, on_progress=events.append)
    assert outcome.status == "completed", outcome.message
    window = [e for e in events if e.kind == "progress" and e.text == "measuring"]
    assert [(e.done, e.n_output_tokens) for e in window] == [(0, None), (1, 2), (2, 4)]
    # The estimate sampler's run traces no device energy: energy so far is null, not 0.
    assert all(e.energy_j is None and e.energy_method is None for e in window)


def test_an_exception_is_failed_with_its_traceback_in_the_log(tmp_path: Path) -> None:
    outcome = isolated(tmp_path, 3, target=child_targets.always_fail)
    assert outcome.status == "failed"
    assert outcome.error_type == "ValueError"
    assert outcome.message == "ValueError: this target always fails"
    assert outcome.log_path == tmp_path / "logs" / "003_c1.log"
    log = outcome.log_path.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log
    assert "in always_fail" in log
    assert not list(tmp_path.glob("003_c1_*"))


def test_a_segfault_is_a_crash_named_by_its_signal(tmp_path: Path) -> None:
    outcome = isolated(tmp_path, target=child_targets.segfault)
    assert outcome.status == "crashed"
    assert outcome.signal_name == "SIGSEGV"
    assert outcome.message is not None and "SIGSEGV" in outcome.message
    assert outcome.log_path is not None
    assert "Segmentation fault" in outcome.log_path.read_text(encoding="utf-8")


def test_a_hang_times_out_and_its_whole_process_group_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pids"
    monkeypatch.setenv(child_targets.PID_FILE_ENV, str(pid_file))
    began = time.monotonic()
    outcome = isolated(tmp_path, timeout_s=4, target=child_targets.hang_with_grandchild)
    assert time.monotonic() - began < 4 + 5
    assert outcome.status == "timed_out"
    assert outcome.message is not None and "4 s" in outcome.message
    child_pid, grandchild_pid = map(int, pid_file.read_text().split())
    assert gone(child_pid)
    assert gone(grandchild_pid), "the grandchild outlived the timeout: group not killed"
    # Just before the deadline the child dumped where it hung.
    assert outcome.log_path is not None
    assert "hang_with_grandchild" in outcome.log_path.read_text(encoding="utf-8")


def test_a_memory_hog_ends_as_failed_or_crashed_not_as_a_hang(tmp_path: Path) -> None:
    outcome = isolated(tmp_path, target=child_targets.hog_memory)
    assert outcome.status in {"failed", "crashed"}
    assert outcome.duration_s < 30
    if outcome.status == "failed":
        assert outcome.error_type == "MemoryError"


def test_a_stop_event_interrupts_the_running_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pids"
    monkeypatch.setenv(child_targets.PID_FILE_ENV, str(pid_file))
    stop = threading.Event()

    def on_progress(event: RunEvent) -> None:
        if event.kind == "phase" and event.text == "hanging":
            stop.set()

    outcome = isolated(
        tmp_path,
        on_progress=on_progress,
        stop_event=stop,
        target=child_targets.hang_with_grandchild,
    )
    assert outcome.status == "interrupted"
    assert outcome.duration_s < 15
    assert all(gone(int(pid)) for pid in pid_file.read_text().split())


def test_ctrl_c_in_the_parent_interrupts_and_kills_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pids"
    monkeypatch.setenv(child_targets.PID_FILE_ENV, str(pid_file))

    def on_progress(event: RunEvent) -> None:
        if event.kind == "phase" and event.text == "hanging":
            raise KeyboardInterrupt  # as if Ctrl-C arrived while the parent waits

    outcome = isolated(tmp_path, on_progress=on_progress, target=child_targets.hang_with_grandchild)
    assert outcome.status == "interrupted"
    assert all(gone(int(pid)) for pid in pid_file.read_text().split())


def test_a_link_planted_at_the_log_is_refused_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n", encoding="utf-8")
    log = log_path(tmp_path, 2, 1)
    log.parent.mkdir(parents=True)
    log.symlink_to(victim)
    outcome = isolated(tmp_path, 2)
    assert outcome.status == "crashed", outcome.message
    assert victim.read_text(encoding="utf-8") == "untouched\n"
    assert not list(tmp_path.glob("002_c1_*"))
