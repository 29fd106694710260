"""`llem doctor`: the host report, on a simulated GPU and a fake powercap tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from llenergymeasure.cli.doctor import _tables
from llenergymeasure.config.loading import UserConfig
from llenergymeasure.engines.registry import ENGINES
from llenergymeasure.experiment.doctor import diagnose
from llenergymeasure.testing.fake_powercap import make_tree
from llenergymeasure.testing.simulated_nvml import SimulatedGpu, SimulatedNvml


def _gpu_host(tmp_path: Path) -> SimulatedNvml:
    make_tree(tmp_path, n_packages=1)
    return SimulatedNvml(
        [
            SimulatedGpu("NVIDIA H200", "GPU-aaa", power_w=120.0, persistence_mode=False),
            SimulatedGpu("NVIDIA H200", "GPU-bbb", power_w=110.0, power_limit_w=500.0),
        ]
    )


def test_gpu_host_report(tmp_path: Path) -> None:
    report = diagnose(UserConfig(cpu_tdp_w=64.0), nvml=_gpu_host(tmp_path), powercap_root=tmp_path)
    assert [g.uuid for g in report.survey.gpus] == ["GPU-aaa", "GPU-bbb"]
    assert report.survey.driver_version
    assert report.samplers["nvml"].available
    assert report.samplers["rapl"].available
    assert report.samplers["estimate"].available
    assert report.auto_choice.startswith("nvml: ")
    assert "rapl: " in report.auto_choice
    assert report.cpu_tdp.source == "user config"
    assert {z.domain for z in report.rapl_zones} >= {"cpu:0", "dram:0"}
    # persistence off on one GPU, a lowered power limit on the other
    assert any("persistence" in w for w in report.warnings)
    assert any("power limit" in w for w in report.warnings)
    assert report.engines["fake"].available
    assert report.engines["vllm"].reason  # available or not, it says why
    data = json.loads(json.dumps(report.to_json(), default=str))
    assert data["energy_samplers"]["nvml"]["accuracy"].startswith("counter")
    text = _render(report)
    assert "GPU-aaa" in text and "auto picks" in text


def test_cpu_only_host_names_why_each_sampler_is_missing(tmp_path: Path) -> None:
    report = diagnose(UserConfig(), powercap_root=tmp_path / "none")
    assert report.survey.gpus == []
    assert report.survey.reason
    assert not report.samplers["rapl"].available
    assert report.auto_choice.startswith("estimate: ")
    assert "passed over" in report.auto_choice


def test_cli_doctor_and_its_alias_exit_0(tmp_path: Path) -> None:
    """A user's `llem doctor` lists the real engines only: the fake one is a test double."""
    env = {k: v for k, v in os.environ.items() if k != "LLEM_TESTING"}
    for command in ("doctor", "config"):
        proc = subprocess.run(
            [sys.executable, "-m", "llenergymeasure", command, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env=env,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["energy_samplers"]["estimate"]["available"] is True
        assert set(data["engines"]) >= {"transformers", "vllm", "tensorrt"}
        assert "fake" not in data["engines"]
        assert "fake" not in data["energy_samplers"]


def test_every_engine_is_listed_with_its_version_or_why_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt_llm", None)  # not installed
    report = diagnose(UserConfig(), powercap_root=tmp_path / "none")
    assert set(report.engines) >= set(ENGINES)
    tensorrt = report.engines["tensorrt"]
    assert not tensorrt.available
    assert tensorrt.reason.count("pip install 'llenergymeasure[tensorrt]'") == 1
    assert report.engines["fake"].version == "1"
    text = _render(report)
    assert "tensorrt_llm not installed" in text


def test_an_engine_with_a_runner_is_probed_in_that_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_RUNNER_FAKE", sys.executable)
    fake = diagnose(UserConfig(), powercap_root=tmp_path / "none").engines["fake"]
    assert fake.available
    assert fake.version == "1"
    assert f"in the runner {Path(sys.executable).absolute()} ($LLEM_RUNNER_FAKE)" in fake.reason


def test_a_broken_runner_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_RUNNER_FAKE", str(tmp_path / "missing-python"))
    missing = diagnose(UserConfig(), powercap_root=tmp_path / "none").engines["fake"]
    assert not missing.available
    assert "not an executable file" in missing.reason
    failing = tmp_path / "python"
    failing.write_text("#!/bin/sh\necho 'ModuleNotFoundError: llenergymeasure' >&2\nexit 3\n")
    failing.chmod(0o755)
    monkeypatch.setenv("LLEM_RUNNER_FAKE", str(failing))
    broken = diagnose(UserConfig(), powercap_root=tmp_path / "none").engines["fake"]
    assert not broken.available
    assert broken.reason.endswith("ModuleNotFoundError: llenergymeasure")
    assert str(failing) in broken.reason


def _render(report: object) -> str:
    console = Console(record=True, width=200)
    for table in _tables(report):  # type: ignore[arg-type]
        console.print(table)
    return console.export_text()
