"""Serving runs on simulated H200s: the endpoint's server holds a CUDA context on the GPU,
so its idle is the 120 W of a loaded engine. The serving spine keys its baseline on the GPUs
in scope (UUIDs, driver) and the server, locks its GPUs, warns about other work on them, and
has no no-context idle (the server was there before the run), saying why."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from h200_run import Waits
from llenergymeasure import run_experiment
from llenergymeasure.config.loading import deep_merge
from llenergymeasure.errors import PreflightError
from llenergymeasure.experiment.options import RunOptions
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.system.locks import DeviceLocks, runtime_dir
from llenergymeasure.testing.fake_openai_server import FakeOpenAIServer
from llenergymeasure.testing.h200 import h200, h200_nvml
from llenergymeasure.testing.simulated_nvml import SimulatedNvml

IDLE_TOLERANCE = 0.12  # 1 s idle figures on a counter that steps every 100 ms

SERVING: dict[str, Any] = {
    "mode": "serving",
    "task": {"dataset": {"n_prompts": 4}, "max_output_tokens": 8},
    "serving": {"arrival": {"rate": 8}, "duration_s": 2.0},
    "measurement": {
        "devices": ["cuda:0"],
        "sample_interval_ms": 20,
        "min_window_s": 1.0,
        "warmup": {"enabled": False},
        "baseline": {"duration_s": 1.0, "spot_check_s": 1.0, "strategy": "cached"},
    },
}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(ttft_ms=10, itl_ms=5, n_tokens=8) as running:
        yield running


def serve(
    nvml: SimulatedNvml,
    server: FakeOpenAIServer,
    change: dict[str, Any] | None = None,
    **kwargs: Any,
) -> ExperimentResult:
    """One endpoint-mode serving run measured on the simulated GPUs."""
    config = deep_merge(SERVING, {"serving": {"endpoint": server.url}, **(change or {})})
    kwargs.setdefault("options", RunOptions())
    return run_experiment(config, nvml=nvml, **kwargs)


def with_server_context(nvml: SimulatedNvml, index: int = 0) -> SimulatedNvml:
    """The endpoint's server (in this process, as the fake server is) holds GPU ``index``."""
    nvml.open_context(index, pid=os.getpid(), name="vllm serve", used_mib=30_000.0)
    return nvml


def test_the_baseline_is_the_servers_idle_and_the_no_context_idle_is_null_with_a_note(
    server: FakeOpenAIServer,
) -> None:
    result = serve(with_server_context(h200_nvml()), server)
    energy = result.energy
    assert energy.baseline is not None
    assert energy.baseline.power_w == pytest.approx(120.0, rel=IDLE_TOLERANCE)
    assert energy.baseline.state is not None and "server up" in energy.baseline.state
    assert energy.baseline.power_w_by_domain.keys() == {"gpu:0"}
    assert energy.idle_no_context is None
    assert energy.idle_no_context_note is not None
    assert "endpoint's server already held its CUDA context" in energy.idle_no_context_note
    assert [d.method for d in energy.domains if d.domain == "gpu:0"] == ["counter"]


def test_the_cached_baseline_is_keyed_on_the_gpu_in_scope_and_the_driver(
    server: FakeOpenAIServer,
) -> None:
    # GPU 1 idles at 150 W with a context: a baseline cached from GPU 0 would be 120 W
    nvml = SimulatedNvml([h200(index=0), h200(index=1, idle_w=110.0)], call_latency_s=0.001)
    with_server_context(with_server_context(nvml, 0), 1)
    first = serve(nvml, server)
    again = serve(nvml, server)
    on_1 = serve(nvml, server, {"measurement": {"devices": ["cuda:1"]}})
    assert first.energy.baseline is not None and again.energy.baseline is not None
    assert again.energy.baseline.note.startswith("cached")
    assert again.energy.baseline.measured_at == first.energy.baseline.measured_at
    assert on_1.energy.baseline is not None and on_1.energy.baseline.note == "measured now"
    assert on_1.energy.baseline.power_w == pytest.approx(150.0, rel=IDLE_TOLERANCE)
    other_driver = SimulatedNvml([h200()], driver_version="590.1.1", call_latency_s=0.001)
    with_server_context(other_driver)
    fresh = serve(other_driver, server)
    assert fresh.energy.baseline is not None and fresh.energy.baseline.note == "measured now"


class LockProbe(Waits):
    """Tries the GPU's lock while the load runs: a run that holds it makes the try fail."""

    def __init__(self, uuid: str) -> None:
        super().__init__()
        self.uuid = uuid
        self.busy_during_load: bool | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if name == "measuring under load":
            probe = DeviceLocks([self.uuid], runtime_dir())
            busy = probe.try_acquire()
            probe.release()
            self.busy_during_load = self.uuid in busy
        yield


def test_the_gpu_is_locked_through_the_load_and_a_held_lock_fails_the_run(
    server: FakeOpenAIServer,
) -> None:
    nvml = with_server_context(h200_nvml())
    uuid = nvml.gpus[0].uuid
    probe = LockProbe(uuid)
    serve(nvml, server, reporter=probe)
    assert probe.busy_during_load is True
    holder = DeviceLocks([uuid], runtime_dir())
    assert holder.try_acquire() == {}
    try:
        with pytest.raises(PreflightError) as caught:
            serve(nvml, server, options=RunOptions(lock_timeout_s=0.2))
        unlocked = serve(nvml, server, options=RunOptions(lock=False))
    finally:
        holder.release()
    (problem,) = caught.value.problems
    assert problem.startswith(f"gpu:0 (NVIDIA H200, {uuid}) is being measured")
    assert unlocked.energy.total_j is not None


def test_another_process_on_the_gpu_is_a_warning_or_with_strict_a_refusal(
    server: FakeOpenAIServer,
) -> None:
    nvml = with_server_context(h200_nvml())
    quiet = serve(nvml, server)
    assert "shared_gpu" not in {w.code for w in quiet.warnings}  # the server's own context
    nvml.open_context(0, pid=4321, name="someone-else", used_mib=20_000.0)
    result = serve(nvml, server)
    (shared,) = [w for w in result.warnings if w.code == "shared_gpu"]
    assert "PID 4321 (someone-else, 20,000 MiB)" in shared.message
    with pytest.raises(PreflightError) as caught:
        serve(nvml, server, options=RunOptions(strict=True))
    assert any("PID 4321" in p and p.endswith("(--strict)") for p in caught.value.problems)
