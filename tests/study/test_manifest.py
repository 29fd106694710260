"""The manifest ledger: shape, transitions, atomic rewrites, what is left to run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from study_helpers import make_plan, tiny

from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.errors import StudyError
from llenergymeasure.study.isolation import RunOutcome
from llenergymeasure.study.manifest import MANIFEST_FILE, Ledger, Manifest, remaining
from llenergymeasure.study.models import HeadlineMetrics

ENTRY_KEYS = {
    "index",
    "label",
    "config_hash",
    "cycle",
    "status",
    "n_attempts",
    "started_at",
    "ended_at",
    "duration_s",
    "error",
    "log",
    "result",
    "metrics",
    "placement",
    "adopted",
}
METRICS = HeadlineMetrics(
    output_tokens_per_s=100.0,
    j_per_output_token=0.5,
    energy_j=2.0,
    energy_method="counter",
    window_s=0.04,
)


def two_by_two(tmp_path: Path) -> Ledger:
    plan = make_plan([tiny(), tiny(token_latency_ms=2)], n_cycles=2)
    return Ledger.create(tmp_path, plan)


def test_a_new_manifest_lists_every_planned_run_pending_in_order(tmp_path: Path) -> None:
    ledger = two_by_two(tmp_path)
    data = json.loads((tmp_path / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert set(data) == {
        "schema_version",
        "name",
        "design_hash",
        "status",
        "created_at",
        "updated_at",
        "stop_reason",
        "entries",
    }
    assert data["status"] == "running"
    assert data["design_hash"] == "d" * 16
    assert [set(e) for e in data["entries"]] == [ENTRY_KEYS] * 4
    assert [(e["index"], e["cycle"], e["status"]) for e in data["entries"]] == [
        (1, 1, "pending"),
        (2, 1, "pending"),
        (1, 2, "pending"),
        (2, 2, "pending"),
    ]
    assert data["entries"][0]["config_hash"] == measurement_config_hash(tiny())
    assert data["created_at"].endswith("Z") or data["created_at"].endswith("+00:00")
    assert Manifest.load(tmp_path) == ledger.manifest


def test_every_transition_is_on_disk_and_paths_are_relative(tmp_path: Path) -> None:
    ledger = two_by_two(tmp_path)
    first = ledger.manifest.entries[0]
    running = ledger.start(first)
    on_disk = Manifest.load(tmp_path)
    assert on_disk.entries[0].status == "running"
    assert on_disk.entries[0].n_attempts == 1
    assert on_disk.entries[0].started_at is not None
    outcome = RunOutcome(
        "completed", 1.5, result_dir=tmp_path / "001_c1_x-fake_12345678", metrics=METRICS
    )
    done = ledger.finish(running, outcome)
    on_disk = Manifest.load(tmp_path)
    assert on_disk.entries[0] == done
    assert done.status == "completed"
    assert done.result == "001_c1_x-fake_12345678"
    assert done.duration_s == 1.5
    assert done.metrics == METRICS
    assert on_disk.updated_at >= on_disk.created_at


def test_remaining_is_every_unfinished_entry_in_planned_order(tmp_path: Path) -> None:
    ledger = two_by_two(tmp_path)
    entries = ledger.manifest.entries
    ledger.finish(ledger.start(entries[0]), RunOutcome("completed", 1.0, metrics=METRICS))
    ledger.finish(ledger.start(entries[1]), RunOutcome("crashed", 1.0, "crashed: SIGSEGV"))
    ledger.finish(ledger.start(entries[2]), RunOutcome("timed_out", 1.0, "timed out"))
    left = remaining(ledger.manifest)
    assert [(e.index, e.cycle, e.status) for e in left] == [
        (2, 1, "crashed"),
        (1, 2, "timed_out"),
        (2, 2, "pending"),
    ]
    assert all(e.status != "completed" for e in left)


def test_a_stale_running_entry_counts_as_remaining(tmp_path: Path) -> None:
    ledger = two_by_two(tmp_path)
    ledger.start(ledger.manifest.entries[0])  # then the parent "dies"
    reloaded = Manifest.load(tmp_path)
    assert remaining(reloaded)[0].status == "running"
    assert len(remaining(reloaded)) == 4


def test_resume_refuses_another_design_and_keeps_recorded_state(tmp_path: Path) -> None:
    ledger = two_by_two(tmp_path)
    ledger.finish(ledger.start(ledger.manifest.entries[0]), RunOutcome("completed", 1.0))
    with pytest.raises(StudyError, match="design hash") as info:
        Ledger.resume(tmp_path, make_plan([tiny(), tiny(token_latency_ms=2)], design_hash="e" * 16))
    assert "--resume" in info.value.message
    # Three cycles instead of two: the recorded runs stay, the new ones are appended.
    bigger = make_plan([tiny(), tiny(token_latency_ms=2)], n_cycles=3)
    resumed = Ledger.resume(tmp_path, bigger)
    assert [(e.index, e.cycle, e.status) for e in resumed.manifest.entries][:2] == [
        (1, 1, "completed"),
        (2, 1, "pending"),
    ]
    assert len(resumed.manifest.entries) == 6


def test_load_errors_are_study_errors(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"no manifest\.json"):
        Manifest.load(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(StudyError, match="unreadable manifest"):
        Manifest.load(tmp_path)


_WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, {helpers!r})
from study_helpers import make_plan, tiny
from llenergymeasure.study.isolation import RunOutcome
from llenergymeasure.study.manifest import Ledger
configs = [tiny(token_latency_ms=i) for i in range(20)]
ledger = Ledger.create(Path({folder!r}), make_plan(configs, n_cycles=5))
print("ready", flush=True)
while True:
    for entry in ledger.manifest.entries:
        ledger.finish(ledger.start(entry), RunOutcome("failed", 0.1, "x" * 2000))
"""


def test_a_manifest_rewritten_when_the_writer_is_sigkilled_still_loads(tmp_path: Path) -> None:
    code = _WRITER.format(helpers=str(Path(__file__).parent), folder=str(tmp_path))
    writer = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # many rewrites of a ~300 KiB file
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    manifest = Manifest.load(tmp_path)
    assert len(manifest.entries) == 100
    assert any(e.n_attempts > 0 for e in manifest.entries)
