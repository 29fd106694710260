"""`llem run` in a subprocess against a stand-in ``pynvml`` (simulated H200s) first on the path:
the real CLI and NVML code path, read back from result.json and environment.json.

A stand-in that lacks NVML functions must still give a labelled result: no field values
-> power labelled averaged; no total-energy counter -> integrated; never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from h200_run import h200_config
from llenergymeasure.testing.h200 import H200_DRIVER_VERSION
from llenergymeasure.testing.pynvml_stand_in import write_stand_in

CONFIG = h200_config(
    {"measurement": {"devices": ["cuda:0"], "min_window_s": 1.0, "sample_interval_ms": 50}}
)


def llem_on_h200(
    tmp_path: Path, *args: str, omit: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], Path]:
    stand_in = write_stand_in(tmp_path / "nvml", omit=omit)
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(stand_in), os.environ.get("PYTHONPATH", "")]),
        "LLEM_CACHE_DIR": str(tmp_path / "cache"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "llenergymeasure", "run", "experiment.yaml",
         "--output", "out", "--quiet", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    folders = sorted((tmp_path / "out").glob("*/001_c1_*"))
    return proc, folders[0] if folders else tmp_path


def read(folder: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / name).read_text(encoding="utf-8"))
    return data


def test_a_gpu_run_through_pynvml_records_the_gpu_and_a_counter_headline(tmp_path: Path) -> None:
    proc, folder = llem_on_h200(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result, environment = read(folder, "result.json"), read(folder, "environment.json")
    energy = result["energy"]
    assert (energy["method"], energy["confidence"]) == ("counter", "high")
    gpu, cpu = energy["domains"]
    assert (gpu["domain"], gpu["method"], gpu["power_source"]) == ("gpu:0", "counter", "instant")
    assert gpu["device_uuid"] == environment["accelerators"][0]["uuid"]
    assert (cpu["domain"], cpu["method"]) == ("cpu:0", "estimated")
    assert energy["total_j"] == gpu["energy_j"]
    assert energy["estimated"]["domains"] == ["cpu:0"]
    assert energy["baseline"]["state"].startswith("engine loaded")
    assert energy["idle_no_context"]["power_w"] == pytest.approx(80.0, rel=0.12)
    (accelerator,) = environment["accelerators"]
    assert accelerator == {
        "index": 0,
        "name": "NVIDIA H200",
        "uuid": accelerator["uuid"],
        "memory_total_mib": 143_771.0,
        "power_limit_w": 700.0,
        "default_power_limit_w": 700.0,
        "persistence_mode": True,
        "mig_mode": False,
        "ecc_enabled": True,
        "compute_capability": "9.0",
        "in_scope": True,
    }
    assert accelerator["uuid"].startswith("GPU-")
    assert (environment["driver_version"], environment["cuda_version"]) == (
        H200_DRIVER_VERSION,
        "13.0",
    )
    assert result["methodology"]["version"] == "2.0"


@pytest.mark.parametrize(
    ("missing", "method", "power_source", "reasons_from"),
    [
        ("nvmlDeviceGetFieldValues", "counter", "averaged", "sampled"),
        ("nvmlDeviceGetTotalEnergyConsumption", "integrated", "instant", "counter"),
    ],
)
def test_a_stand_in_without_a_function_gives_a_labelled_result_and_no_traceback(
    tmp_path: Path, missing: str, method: str, power_source: str, reasons_from: str
) -> None:
    proc, folder = llem_on_h200(tmp_path, omit=(missing,))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result = read(folder, "result.json")
    gpu = result["energy"]["domains"][0]
    assert (gpu["method"], gpu["power_source"]) == (method, power_source)
    assert gpu["energy_j"] is not None and gpu["energy_j"] > 0
    assert result["trace"]["power_sources"] == {"gpu:0": power_source}
    (thermal,) = result["thermal"]
    assert set(thermal["reason_sources"].values()) <= {reasons_from}
    codes = {w["code"] for w in result["warnings"]}
    assert ("averaged_power" in codes) is (power_source == "averaged")


def test_run_time_options_do_not_change_what_is_measured(tmp_path: Path) -> None:
    plain, plain_folder = llem_on_h200(tmp_path / "a")
    flagged, flagged_folder = llem_on_h200(
        tmp_path / "b", "--strict", "--no-lock", "--lock-timeout", "3"
    )
    assert plain.returncode == 0 and flagged.returncode == 0, flagged.stderr
    plain_hash = read(plain_folder, "result.json")["measurement_config_hash"]
    assert read(flagged_folder, "result.json")["measurement_config_hash"] == plain_hash


@pytest.mark.parametrize(
    ("args", "environ"),
    [
        (("--lock-timeout", "-2"), {}),
        (("--lock-timeout", "inf"), {}),
        (("--lock-timeout", "1e9"), {}),
        ((), {"LLEM_LOCK_TIMEOUT_S": "inf"}),
    ],
    ids=["negative", "infinite", "absurd", "infinite-in-the-environment"],
)
def test_a_bad_lock_timeout_is_one_error_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    environ: dict[str, str],
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    proc, folder = llem_on_h200(tmp_path, *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --lock-timeout (LLEM_LOCK_TIMEOUT_S)")
    assert "must be 0 to 86400 seconds" in lines[0]
    assert folder == tmp_path  # no run folder was written
