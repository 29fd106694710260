"""scripts/gpu-check.sh against stand-ins: its shell parses, and its assertions
(scripts/gpu_check_assert.py) pass on results of a simulated H200 and fail, with one line
per failure and no traceback, when a figure is missing or wrong."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from h200_run import h200_config
from llenergymeasure import run_experiment
from llenergymeasure.experiment.options import RunOptions
from llenergymeasure.testing.h200 import h200_nvml
from llenergymeasure.testing.simulated_gpu_engine import SimulatedGpuEngine

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "gpu_check_assert.py"
# As the check's single run: a 10 s window; the idle figures short, so the test takes ~15 s.
CONFIG = h200_config({"measurement": {"sample_interval_ms": 50, "min_window_s": 10}})


@pytest.fixture(scope="module")
def h200_result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One result folder of a >= 10 s run on a simulated H200."""
    root = tmp_path_factory.mktemp("h200")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LLEM_CACHE_DIR", str(root / "cache"))
        env.setenv("XDG_RUNTIME_DIR", str(root / "runtime"))  # device locks of its own
        nvml = h200_nvml()
        run_experiment(
            CONFIG,
            engine=SimulatedGpuEngine(nvml),
            nvml=nvml,
            options=RunOptions(),
            output_dir=root / "results",
        )
    (folder,) = root.glob("results/*/001_c1_*")
    return folder


def lay_out(out: Path, folder: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """The folders gpu-check.sh writes, each a copy of ``folder``; ``edit`` changes the
    single run's result.json."""
    single = shutil.copytree(folder, out / "run" / "m-transformers_x" / "001_c1_m")
    for i in range(1, 5):
        shutil.copytree(folder, out / "study" / "gpu-check_x" / f"00{i}_c1_m")
    if edit is not None:
        path = single / "result.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        edit(data)
        path.write_text(json.dumps(data), encoding="utf-8")
    return out


def check(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_shell_script_parses() -> None:
    proc = subprocess.run(
        ["bash", "-n", str(ROOT / "scripts" / "gpu-check.sh")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_a_simulated_h200_run_passes_every_assertion(h200_result: Path, tmp_path: Path) -> None:
    proc = check(lay_out(tmp_path, h200_result))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("all 5 runs pass")
    assert "gap +" in proc.stdout or "gap -" in proc.stdout
    assert "power-capped" in proc.stdout and "(instant)" in proc.stdout


def _no_bare_idle(data: dict[str, Any]) -> None:
    data["energy"]["idle_no_context"] = None
    data["energy"]["idle_no_context_note"] = "not measured: a test said so"


def _no_gap(data: dict[str, Any]) -> None:
    for domain in data["energy"]["domains"]:
        domain["gap_pct"] = None
    data["energy"]["total_j"] = None


def _averaged(data: dict[str, Any]) -> None:
    for domain in data["energy"]["domains"]:
        if domain["domain"].startswith("gpu:"):
            domain["power_source"] = "averaged"


@pytest.mark.parametrize(
    ("edit", "failure"),
    [
        (_no_bare_idle, "no no-context idle (not measured: a test said so)"),
        (_no_gap, "gpu:0 counter vs instant-integrated gap None %"),
        (_averaged, "gpu:0 power is averaged"),
    ],
    ids=["no-context-idle-null", "gap-null", "averaged-power"],
)
def test_a_missing_or_wrong_figure_fails_with_its_line_and_no_traceback(
    h200_result: Path,
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], None],
    failure: str,
) -> None:
    proc = check(lay_out(tmp_path, h200_result, edit))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"001_c1_m: {failure}" in proc.stderr.splitlines()
    assert "null" in proc.stdout.splitlines()[0] or failure.endswith("averaged")


def test_the_study_runs_need_no_no_context_idle(h200_result: Path, tmp_path: Path) -> None:
    out = lay_out(tmp_path, h200_result)
    for path in out.glob("study/*/*/result.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        _no_bare_idle(data)
        path.write_text(json.dumps(data), encoding="utf-8")
    proc = check(out)
    assert proc.returncode == 0, proc.stderr


def test_too_few_folders_fail(h200_result: Path, tmp_path: Path) -> None:
    shutil.copytree(h200_result, tmp_path / "run" / "m_x" / "001_c1_m")
    proc = check(tmp_path)
    assert proc.returncode == 1
    assert "expected 1 + 4 result folders, found 1 + 0" in proc.stderr
