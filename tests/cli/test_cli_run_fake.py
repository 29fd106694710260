"""`llem run` end to end with the fake engine: output, files, --json, --dry-run, --quiet.

Every test runs the real CLI in a subprocess; the fake engine needs no weights and
finishes a few prompts in well under a second.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import llenergymeasure

FAST = ("--engine", "fake", "-n", "4", "--max-output-tokens", "4")
RUN_DIR = re.compile(r"^.+_\d{8}T\d{6}Z(_\d+)?$")
EXPERIMENT_DIR = re.compile(r"^001_c1_.+-fake_[0-9a-f]{8}$")


def llem(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llenergymeasure", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def experiment_dirs(root: Path) -> list[Path]:
    return sorted(root.glob("*/001_c1_*"))


def test_run_prints_a_result_table_and_writes_the_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = llem("run", *FAST, "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "output tokens/s" in proc.stdout
    assert "energy" in proc.stdout
    # No hardware counter in a test: the figure is labelled as an estimate or as missing.
    assert "estimate" in proc.stdout or "n/a" in proc.stdout
    [run_dir] = list(out.iterdir())
    assert RUN_DIR.match(run_dir.name), run_dir.name
    [experiment] = experiment_dirs(out)
    assert EXPERIMENT_DIR.match(experiment.name), experiment.name
    assert {"result.json", "config.yaml", "environment.json"} <= {
        p.name for p in experiment.iterdir()
    }
    result = json.loads((experiment / "result.json").read_text(encoding="utf-8"))
    assert result["tokens"]["n_prompts"] == 4
    assert result["tokens"]["n_output_tokens"] == 16
    config = yaml.safe_load((experiment / "config.yaml").read_text(encoding="utf-8"))
    assert config["engine"] == "fake"
    assert config["task"]["max_output_tokens"] == 4
    environment = json.loads((experiment / "environment.json").read_text(encoding="utf-8"))
    assert environment["python"]


def test_json_prints_the_result_and_nothing_else_on_stdout(tmp_path: Path) -> None:
    proc = llem("run", *FAST, "--json", "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {"schema_version", "measurement_config_hash", "energy"} <= set(result)
    assert re.fullmatch(r"[0-9a-f]{16}", result["measurement_config_hash"])
    assert result["engine"] == "fake"
    [experiment] = experiment_dirs(tmp_path / "out")
    assert experiment.name.endswith(result["measurement_config_hash"][:8])


def test_dry_run_prints_config_and_plan_and_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "experiment.yaml"
    config.write_text(
        "engine: fake\ntask:\n  max_output_tokens: 4\n  dataset: {n_prompts: 3}\n",
        encoding="utf-8",
    )
    proc = llem("run", str(config), "--dry-run", "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "resolved config" in proc.stdout
    assert "engine: fake" in proc.stdout
    assert "n_prompts: 3" in proc.stdout
    assert "plan (nothing has run)" in proc.stdout
    assert "config hash" in proc.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["experiment.yaml"]


def test_running_twice_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for _ in range(2):
        proc = llem("run", *FAST, "--output", str(out), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    runs = sorted(out.iterdir())
    assert len(runs) == 2
    experiments = experiment_dirs(out)
    assert len(experiments) == 2
    assert all((e / "result.json").is_file() for e in experiments)


def test_quiet_prints_at_most_the_results_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = llem("run", *FAST, "--quiet", "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines == [] or (len(lines) == 1 and lines[0].startswith("results written")), lines
    assert "output tokens/s" in proc.stdout  # the result itself is still printed
    assert len(experiment_dirs(out)) == 1


def test_version(tmp_path: Path) -> None:
    proc = llem("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"llem {llenergymeasure.__version__}"
    assert re.fullmatch(r"llem \d+\.\d+\S*", proc.stdout.strip())


def test_no_arguments_shows_help(tmp_path: Path) -> None:
    """`llem` alone prints the usage and the command list on stdout."""
    proc = llem(cwd=tmp_path)
    assert "Usage: llem" in proc.stdout
    assert "run" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_no_arguments_exits_0_or_2_without_an_internal_error(tmp_path: Path) -> None:
    proc = llem(cwd=tmp_path)
    assert proc.returncode in (0, 2), proc.stderr
    assert "internal error" not in proc.stderr


def test_zero_config_is_the_quick_look(tmp_path: Path) -> None:
    proc = llem("run", "--engine", "fake", "--json", "--output", str(tmp_path / "o"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Quick first look" in proc.stderr
    assert "Quick first look" not in proc.stdout
    result: dict[str, Any] = json.loads(proc.stdout)
    assert result["config"]["task"]["dataset"]["n_prompts"] == 20
    assert result["config"]["task"]["max_output_tokens"] == 64
    assert result["tokens"]["n_prompts"] == 20
    assert result["tokens"]["n_output_tokens"] == 20 * 64  # the fake engine always fills the limit


def test_naming_a_model_leaves_the_quick_look(tmp_path: Path) -> None:
    proc = llem(
        "run",
        *FAST,
        "--model",
        "smollm2-135m",
        "--json",
        "--output",
        str(tmp_path / "o"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Quick first look" not in proc.stderr
    result = json.loads(proc.stdout)
    assert result["config"]["measurement"]["warmup"]["n_warmup"] == 5  # the full default


def _env_without_terminal_width() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


def test_stderr_notes_are_single_lines_in_logs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = llem("run", *FAST, "--output", str(out), cwd=tmp_path, env=_env_without_terminal_width())
    assert proc.returncode == 0, proc.stderr
    [experiment] = experiment_dirs(out)
    lines = proc.stderr.splitlines()
    [quick] = [line for line in lines if line.startswith("Quick first look")]
    assert quick.endswith("llem run --model smollm2-135m")
    assert f"results written to {experiment}" in lines


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_during_the_run_exits_130(tmp_path: Path) -> None:
    config = tmp_path / "slow.yaml"
    # 20 prompts x 64 steps x 20 ms: about 25 s of window, so the interrupt lands inside it.
    config.write_text(
        "engine: fake\n"
        "fake: {token_latency_ms: 20}\n"
        "task: {max_output_tokens: 64, dataset: {n_prompts: 20}}\n"
        "measurement: {warmup: {enabled: false}}\n",
        encoding="utf-8",
    )
    stderr_file = tmp_path / "stderr.txt"
    with stderr_file.open("w", encoding="utf-8") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llenergymeasure", "run", str(config), "--output", "out"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while "warm-up" not in stderr_file.read_text(encoding="utf-8"):
                assert proc.poll() is None, stderr_file.read_text(encoding="utf-8")
                assert time.monotonic() < deadline, "the run never reached the window"
                time.sleep(0.05)
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = stderr_file.read_text(encoding="utf-8")
    assert proc.returncode == 130, text
    assert "error: interrupted" in text
    assert "Traceback" not in text
