"""`llem run study.yaml`: the plan, a real run of fake-engine children, interrupt and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

STUDY = """\
study_name: tiny
engine: fake
task: {dataset: {n_prompts: 2}, max_output_tokens: 2}
fake: {token_latency_ms: %(latency)s}
measurement: {warmup: {enabled: false}, energy_sampler: estimate}
sweep:
  fake.batch_size: [1, 2]
study_execution: {n_cycles: 2, experiment_order: interleave}
"""


def llem(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llenergymeasure", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _write(tmp_path: Path, latency: float = 1) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(STUDY % {"latency": latency}, encoding="utf-8")
    return path


def _manifest(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    (study_dir,) = (tmp_path / "results").iterdir()
    return json.loads((study_dir / "manifest.json").read_text())


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    _write(tmp_path)
    proc = llem("run", "study.yaml", "--dry-run", "--cycles", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2 configs × 3 cycles = 6 runs" in proc.stdout
    assert "fake bs=1" in proc.stdout and "fake bs=2" in proc.stdout
    assert not (tmp_path / "results").exists()


def test_the_worked_study_example_expands_as_its_comment_says(tmp_path: Path) -> None:
    proc = llem("run", str(EXAMPLES / "study.yaml"), "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "29 configs × 3 cycles = 87 runs" in " ".join(proc.stdout.split())


def test_a_study_runs_every_config_and_cycle_and_summarises(tmp_path: Path) -> None:
    _write(tmp_path)
    proc = llem("run", "study.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "4/4 runs completed" in " ".join(proc.stdout.split())
    manifest = _manifest(tmp_path)
    assert manifest["status"] == "completed"
    assert sorted((e["index"], e["cycle"]) for e in manifest["entries"]) == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
    ]
    # resuming a finished study runs nothing more
    again = llem("run", "study.yaml", "--resume", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "results").iterdir())) == 1
    assert _manifest(tmp_path)["status"] == "completed"


def test_ctrl_c_then_resume_finishes_exactly_the_missing_runs(tmp_path: Path) -> None:
    # 2 prompts x 2 steps x 400 ms: each run lasts about 2 s, long enough to interrupt
    _write(tmp_path, latency=400)
    child = subprocess.Popen(
        [sys.executable, "-m", "llenergymeasure", "run", "study.yaml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            entries = _manifest(tmp_path)["entries"]
        except (ValueError, OSError):
            continue
        if sum(e["status"] == "completed" for e in entries) >= 1:
            break
    os.killpg(child.pid, signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    manifest = _manifest(tmp_path)
    assert manifest["status"] == "interrupted"
    done_before = {
        (e["index"], e["cycle"]) for e in manifest["entries"] if e["status"] == "completed"
    }
    assert 1 <= len(done_before) < 4

    resumed = llem("run", "study.yaml", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    manifest = _manifest(tmp_path)
    assert manifest["status"] == "completed"
    assert sorted((e["index"], e["cycle"]) for e in manifest["entries"]) == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
    ]
    (study_dir,) = (tmp_path / "results").iterdir()
    folders = [p.name for p in study_dir.iterdir() if p.name[:3].isdigit()]
    # every completed run has exactly one result folder: nothing duplicated, nothing lost
    completed = [f for f in folders if (study_dir / f / "result.json").is_file()]
    assert len(completed) == 4


def test_resume_refuses_a_changed_study_file(tmp_path: Path) -> None:
    path = _write(tmp_path)
    assert llem("run", "study.yaml", cwd=tmp_path).returncode == 0
    path.write_text(path.read_text().replace("[1, 2]", "[1, 3]"), encoding="utf-8")
    proc = llem("run", "study.yaml", "--resume", cwd=tmp_path)
    assert proc.returncode in (1, 2)
    assert "design hash" in proc.stderr
    assert "Traceback" not in proc.stderr
