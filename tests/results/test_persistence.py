"""Result files: atomic writes, the folder layout of DESIGN §5, round trips."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.config.loading import UserConfig, load_experiment_config
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import ResultError
from llenergymeasure.records.energy import BaselineResult, DomainEnergy, EnergyResult, PowerResult
from llenergymeasure.records.environment import EnvironmentSnapshot
from llenergymeasure.records.files import (
    atomic_write_text,
    create_unique_dir,
    experiment_dir_name,
    load_result,
    run_dir_name,
    safe_name,
    write_experiment,
)
from llenergymeasure.records.result import (
    ExperimentResult,
    FlopsResult,
    LatencyResult,
    LatencyStats,
    MeasurementWarning,
    MemoryResult,
    ModelIdentity,
    RequestRecord,
    ThroughputResult,
    TimingResult,
    TokenCounts,
    WarmupResult,
    WindowResult,
)

STARTED = datetime(2025, 3, 14, 9, 26, 53, tzinfo=timezone.utc)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------ atomic write


def test_atomic_write_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_text(target, "first\n")
    assert target.read_text(encoding="utf-8") == "first\n"
    atomic_write_text(target, "second ✓\n")
    assert target.read_text(encoding="utf-8") == "second ✓\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_write_failure_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "result.json"
    target.write_text("original", encoding="utf-8")

    def disk_full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(ResultError) as info:
        atomic_write_text(target, "new content")
    monkeypatch.undo()
    assert "disk is full" in info.value.message
    assert str(target) in info.value.message
    assert info.value.hint
    assert isinstance(info.value.__cause__, OSError)
    assert target.read_text(encoding="utf-8") == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_atomic_write_into_a_missing_folder_is_a_result_error(tmp_path: Path) -> None:
    with pytest.raises(ResultError):
        atomic_write_text(tmp_path / "no" / "such" / "dir" / "f.txt", "x")


_READ_ONLY_WRITE = """
import sys
from pathlib import Path
from llenergymeasure.errors import ResultError
from llenergymeasure.records.atomic import atomic_write_text
try:
    atomic_write_text(Path(sys.argv[1]) / "result.json", "x")
except ResultError as err:
    print(err.message)
else:
    print("written")
"""


def _without_permission_bypass() -> list[str]:
    """A command prefix under which directory permissions hold: as root, drop the capabilities
    that let root ignore them (root owns the folder, so its owner bits apply)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root needs setpriv (util-linux) to test permissions"
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


def test_atomic_write_into_a_read_only_folder_is_a_result_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        proc = subprocess.run(
            [*_without_permission_bypass(), sys.executable, "-c", _READ_ONLY_WRITE, str(folder)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        folder.chmod(0o700)
    assert proc.returncode == 0, proc.stderr
    assert "permission denied" in proc.stdout
    assert list(folder.iterdir()) == []


# ------------------------------------------------------------------- folder names


def test_create_unique_dir_never_reuses_a_folder(tmp_path: Path) -> None:
    parent = tmp_path / "results" / "nested"
    first = create_unique_dir(parent, "run")
    (first / "keep.txt").write_text("kept")
    second = create_unique_dir(parent, "run")
    third = create_unique_dir(parent, "run")
    assert [first.name, second.name, third.name] == ["run", "run_1", "run_2"]
    assert all(p.is_dir() and p.parent == parent for p in (first, second, third))
    assert (first / "keep.txt").read_text() == "kept"
    assert list(second.iterdir()) == []


def test_create_unique_dir_skips_a_file_with_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("a file")
    assert create_unique_dir(tmp_path, "run").name == "run_1"
    assert (tmp_path / "run").read_text() == "a file"


def test_create_unique_dir_under_a_file_is_a_result_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(ResultError):
        create_unique_dir(blocker, "run")


@pytest.mark.parametrize(
    "label",
    [
        "../../etc/passwd",
        "a/b/c",
        "nul\x00byte",
        "has spaces in it",
        "..",
        "/abs/path",
        "C:\\windows\\path",
        "x" * 500,
        "../" * 100,
    ],
)
def test_safe_name_is_one_bounded_path_component(label: str) -> None:
    name = safe_name(label)
    assert name
    assert len(name) <= 80
    for bad in ("/", "\\", "\x00", " ", ".."):
        assert bad not in name
    assert not name.startswith((".", "-"))
    assert name not in (".", "..")


def test_safe_name_examples() -> None:
    assert safe_name("../../etc/passwd") == "etc-passwd"
    assert safe_name("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB-SmolLM2-135M"
    assert safe_name("my model v1.5") == "my-model-v1.5"
    assert safe_name("") == "run"
    assert safe_name("../") == "run"
    assert safe_name("x" * 500) == "x" * 80


def test_run_dir_name_format() -> None:
    assert run_dir_name("my study", STARTED) == "my-study_20250314T092653Z"
    assert run_dir_name("../evil/name", STARTED) == "evil-name_20250314T092653Z"


def test_run_dir_name_converts_to_utc() -> None:
    local = STARTED.astimezone(timezone(timedelta(hours=2)))
    assert run_dir_name("run", local) == "run_20250314T092653Z"


# ---------------------------------------------------------------- experiment files


@pytest.fixture
def config() -> ExperimentConfig:
    return ExperimentConfig(
        task={"dataset": {"n_prompts": 4}, "max_output_tokens": 32},
        transformers={"batch_size": 2, "dtype": "float32"},
        measurement={"energy_sampler": "estimate"},
    )


@pytest.fixture
def result(config: ExperimentConfig) -> ExperimentResult:
    window = WindowResult(
        started_at=STARTED, ended_at=STARTED + timedelta(seconds=12.5), duration_s=12.5
    )
    latency = LatencyStats(mean_ms=3100.0, p50_ms=3050.0, p90_ms=3300.0, p99_ms=3390.0, n=4)
    return ExperimentResult(
        experiment_id="exp-0001",
        measurement_config_hash=measurement_config_hash(config),
        tool_version="0.1.0",
        engine="transformers",
        engine_version="4.46.0",
        engine_args={"torch_dtype": "float32", "max_new_tokens": 32},
        model=ModelIdentity(
            name="smollm2-135m",
            resolved="/models/smollm2-135m.gguf",
            kind="bundled-gguf",
            resolved_label="SmolLM2-135M",
            n_params=134_515_008,
            n_non_embedding_params=106_196_736,
            dtype="float32",
            device="cpu",
        ),
        config=config,
        window=window,
        tokens=TokenCounts(n_prompts=4, n_completed=4, n_input_tokens=180, n_output_tokens=128),
        throughput=ThroughputResult(
            output_tokens_per_s=10.24, total_tokens_per_s=24.64, requests_per_s=0.32
        ),
        latency=LatencyResult(
            e2e=latency,
            ttft=LatencyStats(mean_ms=120.0, p50_ms=118.0, p90_ms=130.0, p99_ms=131.0, n=4),
            itl=None,
            definition="static batching: TTFT = batch start to first token",
        ),
        energy=EnergyResult(
            sampler="estimate",
            sampler_reason="no energy sensor is readable on this host",
            method="estimated",
            confidence="low",
            domains=(
                DomainEnergy(domain="cpu:0", energy_j=375.0, method="estimated", source="estimate"),
                DomainEnergy(domain="dram:0", energy_j=None, method="estimated", source="estimate"),
            ),
            total_j=375.0,
            adjusted_j=250.0,
            baseline=BaselineResult(
                power_w=10.0,
                power_w_by_domain={"cpu:0": 10.0},
                duration_s=30.0,
                n_samples=300,
                std_w=0.4,
                method="estimated",
                strategy="fresh",
                measured_at=STARTED - timedelta(minutes=1),
                age_s=60.0,
                note="measured now",
            ),
            j_per_output_token=375.0 / 128,
            j_per_request=375.0 / 4,
            co2_g=None,
            details={"cpu_tdp_w": 65.0, "tdp_source": "user config"},
        ),
        power=PowerResult(mean_w=30.0, peak_w=41.5, method="estimated"),
        warmup=WarmupResult(
            n_runs=5,
            mode="fixed",
            converged=None,
            final_cv=None,
            duration_s=4.2,
            thermal_floor_s=0.0,
        ),
        flops=FlopsResult(
            total=2 * 106_196_736 * 308,
            per_output_token=2 * 106_196_736,
            achieved_flops_per_s=2 * 106_196_736 * 308 / 12.5,
            method="2 x non-embedding params x tokens",
            confidence="medium",
        ),
        memory=MemoryResult(peak_host_rss_mib=812.5, peak_device_mib=None, model_memory_mib=513.0),
        timings=TimingResult(
            preflight_s=0.3,
            baseline_s=30.0,
            load_s=2.1,
            prepare_s=0.1,
            warmup_s=4.2,
            measure_s=12.6,
            window_s=12.5,
            total_s=49.3,
        ),
        environment=EnvironmentSnapshot(
            os="Linux",
            kernel="6.8.0",
            hostname="bench-01",
            cpu_model="AMD EPYC 7B13",
            n_cpus_logical=16,
            n_cpus_physical=8,
            memory_total_mib=65536.0,
            python="3.11.9",
            packages={"torch": "2.4.0", "transformers": "4.46.0", "vllm": None},
            accelerators=(),
            captured_at=STARTED - timedelta(minutes=2),
        ),
        warnings=(
            MeasurementWarning(
                code="estimated_energy",
                message="energy is estimated from CPU time and TDP",
                remedy="run on a host with RAPL or NVML for measured energy",
            ),
        ),
        requests=tuple(
            RequestRecord(
                index=i,
                prompt_id=f"p{i}",
                n_input_tokens=45,
                n_output_tokens=32,
                latency_ms=3000.0 + i,
                ttft_ms=120.0,
                itl_ms=None,
            )
            for i in range(4)
        ),
    )


def test_experiment_dir_name_layout(result: ExperimentResult) -> None:
    hash8 = result.measurement_config_hash[:8]
    assert experiment_dir_name(result, index=1, cycle=1) == (
        f"001_c1_SmolLM2-135M-transformers_{hash8}"
    )
    assert experiment_dir_name(result, index=12, cycle=3).startswith("012_c3_")


def test_write_experiment_creates_the_three_files(result: ExperimentResult, tmp_path: Path) -> None:
    folder = write_experiment(result, tmp_path)
    assert folder.parent == tmp_path
    assert folder.name == f"001_c1_SmolLM2-135M-transformers_{result.measurement_config_hash[:8]}"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.yaml",
        "environment.json",
        "result.json",
    ]
    env = json.loads((folder / "environment.json").read_text(encoding="utf-8"))
    assert env["hostname"] == "bench-01"
    assert env["packages"]["vllm"] is None
    saved = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    assert saved["schema_version"] == result.schema_version
    # A reading that was not taken stays null, never 0.
    assert saved["energy"]["domains"][1]["energy_j"] is None
    assert saved["memory"]["peak_device_mib"] is None


def test_config_yaml_reloads_to_the_same_identity(result: ExperimentResult, tmp_path: Path) -> None:
    folder = write_experiment(result, tmp_path)
    data = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    assert data["transformers"]["batch_size"] == 2
    again = load_experiment_config(folder / "config.yaml", user=UserConfig())
    assert again == result.config
    assert measurement_config_hash(again) == result.measurement_config_hash


def test_load_result_round_trips(result: ExperimentResult, tmp_path: Path) -> None:
    folder = write_experiment(result, tmp_path, index=7, cycle=2)
    assert folder.name.startswith("007_c2_")
    assert load_result(folder) == result
    assert load_result(folder / "result.json") == result


def test_write_experiment_never_overwrites(result: ExperimentResult, tmp_path: Path) -> None:
    first = write_experiment(result, tmp_path)
    second = write_experiment(result, tmp_path)
    assert second.name == first.name + "_1"
    assert load_result(first) == load_result(second) == result


def test_truncated_result_is_a_result_error(result: ExperimentResult, tmp_path: Path) -> None:
    folder = write_experiment(result, tmp_path)
    file = folder / "result.json"
    text = file.read_text(encoding="utf-8")
    file.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(ResultError) as info:
        load_result(folder)
    assert str(file) in info.value.message


@pytest.mark.parametrize(
    "content",
    [b"[]", b'{"schema_version": "1"}', b"\xff\xfe\x00garbage", b""],
)
def test_unusable_result_file_is_a_result_error(tmp_path: Path, content: bytes) -> None:
    file = tmp_path / "result.json"
    file.write_bytes(content)
    with pytest.raises(ResultError):
        load_result(file)


def test_missing_result_is_a_result_error(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match="no result"):
        load_result(tmp_path)
    with pytest.raises(ResultError, match="no result"):
        load_result(tmp_path / "gone" / "result.json")
