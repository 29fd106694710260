"""The real CLI on the real bundled model, on the CPU: the journey of DESIGN §2.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.records.timeseries import read_timeseries

pytestmark = pytest.mark.model


def test_llem_run_on_the_bundled_model(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "llenergymeasure",
            "run",
            "--model",
            "smollm2-135m",
            "-n",
            "4",
            "--batch-size",
            "2",
            "--max-output-tokens",
            "8",
            "--dtype",
            "float32",
            "--output",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["engine"] == "transformers"
    assert result["model"]["name"] == "smollm2-135m"
    assert result["tokens"]["n_completed"] == 4
    assert 0 < result["tokens"]["n_output_tokens"] <= 4 * 8
    assert result["throughput"]["output_tokens_per_s"] > 0
    assert result["latency"]["ttft"]["p50_ms"] > 0
    energy = result["energy"]
    assert energy["sampler"] == "estimate"
    # no energy counter on this host: nothing measured, and the estimate stands apart
    assert energy["total_j"] is None and energy["method"] is None
    estimated = energy["estimated"]
    assert estimated["method"] == "estimated" and estimated["confidence"] == "low"
    assert estimated["domains"] == ["cpu:0"]
    # the model's forward passes take far more than one 10 ms clock tick of CPU time
    assert estimated["total_j"] > 0
    codes = {w["code"] for w in result["warnings"]}
    # a CPU window has no minimum; under 10 s it is warned about (a loaded host may take longer)
    assert ("short_window" in codes) == (result["window"]["duration_s"] < 10.0)
    _assert_compute(result)
    (run_dir,) = out.iterdir()
    (exp_dir,) = run_dir.iterdir()
    assert exp_dir.name.startswith("001_c1_smollm2-135m-transformers_")
    on_disk = json.loads((exp_dir / "result.json").read_text())
    assert on_disk["measurement_config_hash"] == result["measurement_config_hash"]
    assert {p.name for p in exp_dir.iterdir()} == {
        "result.json",
        "config.yaml",
        "environment.json",
        "timeseries.parquet",
    }
    # the power/thermal trace: at least one row per 100 ms of window
    rows = read_timeseries(exp_dir / "timeseries.parquet")
    trace = result["trace"]
    window_s = trace["window_end_s"] - trace["window_start_s"]
    in_window = [r for r in rows if trace["window_start_s"] <= r["t_s"] <= trace["window_end_s"]]
    assert len(rows) >= window_s / 0.1
    assert len(in_window) >= 0.9 * window_s / 0.1
    assert {r["device"] for r in rows} == {"process"}
    assert all(r["memory_used_mib"] > 0 for r in rows)


def _assert_compute(result: dict[str, Any]) -> None:
    """Prefill and decode FLOPs by hand for SmolLM2-135M; MFU and MBU null on this CPU."""
    compute = result["compute"]
    # 106,168,320 parameters in the layers' matmuls + the tied 28,311,552-parameter LM head
    assert compute["params"]["total"] == 134_479_872
    assert compute["params"]["lm_head"] == 28_311_552
    requests = result["requests"]
    # per token 2 x 106,168,320; per attended position 4 x 30 x 9 x 64; LM head 2 x 28,311,552
    layer, score, head = 212_336_640, 69_120, 56_623_104
    prefill = sum(layer * n + score * n * (n + 1) // 2 + head for n in _lengths(requests))
    decode = sum(
        (m - 1) * (layer + head) + score * ((m - 1) * n + (m - 1) * m // 2)
        for n, m in zip(_lengths(requests), _outputs(requests), strict=True)
    )
    assert compute["prefill"]["flops"] == prefill
    assert compute["decode"]["flops"] == decode
    assert result["flops"]["total"] == prefill + decode
    assert compute["mfu"] is None and compute["mbu"] is None and compute["peak"] is None
    assert compute["prefill"]["mfu"] is None and "cpu" in compute["peak_note"]
    assert compute["decode"]["duration_s"] > 0
    # nothing is measured on this host: the split is of the CPU estimate, labelled so
    split = result["phase_energy"]
    assert split["method"] == "attributed" and split["energy_method"] == "estimated"
    assert split["domains"] == ["cpu:0"]
    assert split["weights"] == "utilisation_pct of this process"
    assert split["decode"]["duration_s"] == compute["decode"]["duration_s"]
    parts = split["prefill"]["energy_j"] + split["decode"]["energy_j"] + split["other_j"]
    assert parts == pytest.approx(result["energy"]["estimated"]["total_j"])


def _lengths(requests: list[dict[str, Any]]) -> list[int]:
    return [int(r["n_input_tokens"]) for r in requests]


def _outputs(requests: list[dict[str, Any]]) -> list[int]:
    return [int(r["n_output_tokens"]) for r in requests]


def test_synthetic_prompts_of_exact_length_on_the_real_model() -> None:
    from llenergymeasure import run_experiment

    result = run_experiment(
        {
            "task": {
                "dataset": {
                    "source": "synthetic",
                    "n_prompts": 4,
                    "input_len": 24,
                    "output_len": 6,
                },
                "max_input_tokens": 64,
                "max_output_tokens": 16,
                "chat_template": False,
            },
            "transformers": {"batch_size": 2},
            "measurement": {"warmup": {"n_warmup": 1}},
        }
    )
    # every prompt is exactly 24 tokens (the tokenizer adds no BOS here), every answer exactly 6
    assert [r.n_input_tokens for r in result.requests] == [24, 24, 24, 24]
    assert [r.n_output_tokens for r in result.requests] == [6, 6, 6, 6]
    assert result.engine_args["generate"]["min_new_tokens"] == "6"


def test_a_study_of_the_bundled_model_in_subprocesses(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(
        "study_name: e2e\n"
        "task: {model: smollm2-135m, dataset: {n_prompts: 2}, max_output_tokens: 4}\n"
        "measurement: {warmup: {n_warmup: 1}}\n"
        "sweep: {transformers.batch_size: [1, 2]}\n"
        "study_execution: {n_cycles: 1, experiment_gap_s: 0, cycle_gap_s: 0}\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "llenergymeasure", "run", "study.yaml"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (study_dir,) = (tmp_path / "results").iterdir()
    summary = json.loads((study_dir / "study_result.json").read_text())
    assert summary["status"] == "completed"
    assert summary["summary"]["n_completed"] == 2
    for entry in json.loads((study_dir / "manifest.json").read_text())["entries"]:
        result = json.loads((study_dir / entry["result"] / "result.json").read_text())
        assert result["engine"] == "transformers"
        assert result["tokens"]["n_completed"] == 2
