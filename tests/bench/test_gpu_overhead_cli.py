"""bench/gpu_overhead.py measures on the bundled model, and refuses bad arguments and failed
runs with one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu_overhead.py"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--batch-size", "0"], "--batch-size: must be a positive integer, got '0'"),
        (["--n-prompts", "-3"], "--n-prompts: must be a positive integer"),
        (["--reps", "two"], "--reps: must be an integer, got 'two'"),
        (["--max-output-tokens", "0"], "--max-output-tokens: must be a positive integer"),
        (["--trace-interval-ms", "0"], "--trace-interval-ms: must be a positive integer"),
        (["--threads", "-1"], "--threads: must be 0 or more"),
        (["--emulate-nvml-ms", "-1"], "--emulate-nvml-ms: must be a finite number >= 0"),
        (["--emulate-nvml-ms", "nan"], "--emulate-nvml-ms: must be a finite number >= 0"),
        (["--device", "cuda", "--emulate-nvml-ms", "1"], "is for hosts without a GPU"),
    ],
)
def test_a_bad_argument_is_one_error_line_and_exit_2(
    args: list[str], says: str, tmp_path: Path
) -> None:
    proc = _run(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: ") and says in line


def test_an_llem_error_is_one_line_and_exit_2_never_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    proc = _run("--model", str(missing), "--reps", "1", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: ") and "no-such-model" in line


def test_a_small_run_on_the_bundled_model_ends_with_the_ratio(tmp_path: Path) -> None:
    """Every side runs (llem's engine, window and trace included) and the last line is the
    llem/bare ratio: the bench calls llem's own seams, so a change there must keep it whole."""
    proc = _run(
        *("--n-prompts", "2", "--max-output-tokens", "4", "--batch-size", "2", "--reps", "1"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    ratio = float(proc.stdout.split()[-1])
    assert ratio > 0
