"""NVML errors during a whole experiment (fake engine, simulated GPUs): a partial figure
with a warning, or one clean error; never a hang.

The GPU is "lost" (every NVML query on it raises ``NVMLError_GpuIsLost``, as when a
GPU falls off the bus) at a chosen step: after the first request of the measured
window, or during warm-up, before the window opens.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from llenergymeasure import load_result, run_experiment
from llenergymeasure.energy.nvml import NvmlSampler, NvmlTelemetry
from llenergymeasure.energy.process import ProcessTelemetry
from llenergymeasure.errors import EnergyError
from llenergymeasure.experiment.reporter import NullReporter
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.testing.simulated_nvml import SimulatedGpu, SimulatedNvml

T = TypeVar("T")
CONFIG: dict[str, Any] = {
    "engine": "fake",
    "fake": {"token_latency_ms": 10, "batch_size": 2},
    "task": {"dataset": {"n_prompts": 4}, "max_output_tokens": 25},
    "measurement": {
        "warmup": {"n_warmup": 1, "thermal_floor_s": 0},
        "baseline": {"enabled": False},
        "sample_interval_ms": 20,
    },
}
NEVER_HANGS_S = 120.0


class LoseGpu(NullReporter):
    """Loses GPU ``index`` at the first progress report of the given step."""

    def __init__(self, nvml: SimulatedNvml, index: int, during: str) -> None:
        self._nvml = nvml
        self._index = index
        self._during = during
        self._step = ""
        self.lost = False

    def step(self, name: str) -> AbstractContextManager[None]:
        self._step = name
        return super().step(name)

    def advance(self, done: int, so_far: object = None) -> None:
        if self._step == self._during and done >= 1 and not self.lost:
            gpus = list(self._nvml.gpus)
            gpus[self._index] = dataclasses.replace(gpus[self._index], fail_after_s=0.0)
            self._nvml.gpus = tuple(gpus)
            self.lost = True


def _within(seconds: float, work: Callable[[], T]) -> T:
    """``work()`` in a thread; fail the test if it has not returned after ``seconds``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as err:  # handed back to the test thread
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds:g} s"
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _run(
    n_gpus: int, lose: int, during: str, output: Path, *, counter: bool = True
) -> tuple[Callable[[], ExperimentResult], LoseGpu]:
    nvml = SimulatedNvml(
        [
            SimulatedGpu("NVIDIA H100", f"GPU-{i}", power_w=150.0, has_energy_counter=counter)
            for i in range(n_gpus)
        ]
    )
    devices = [f"cuda:{i}" for i in range(n_gpus)]
    reporter = LoseGpu(nvml, lose, during)

    def work() -> ExperimentResult:
        return run_experiment(
            CONFIG,
            sampler=NvmlSampler(devices, nvml=nvml, environ={}),
            telemetry=[NvmlTelemetry(devices, nvml=nvml, environ={}), ProcessTelemetry()],
            reporter=reporter,
            output_dir=output,
        )

    return work, reporter


@pytest.fixture
def output(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "results"


def test_one_of_two_gpus_lost_mid_window_gives_a_partial_figure_and_a_warning(
    output: Path,
) -> None:
    work, reporter = _run(2, 1, "measuring", output)
    result = _within(NEVER_HANGS_S, work)
    assert reporter.lost
    healthy, lost = result.energy.domains
    assert (healthy.domain, healthy.method) == ("gpu:0", "counter")
    assert healthy.energy_j is not None and healthy.energy_j > 0
    assert (lost.domain, lost.method) == ("gpu:1", "integrated")
    assert lost.energy_j is not None and 0 < lost.energy_j < healthy.energy_j
    assert result.energy.confidence == "low"
    assert result.energy.details["partial"] is True
    (warning,) = [w for w in result.warnings if "partial" in w.message]
    assert "gpu:1" in warning.message and "GPU is lost" in warning.message
    (run_dir,) = output.iterdir()
    (folder,) = run_dir.iterdir()
    assert load_result(folder).energy.details["partial"] is True  # written and readable


def test_the_only_gpu_lost_mid_window_without_a_counter_is_partial_not_zero(
    output: Path,
) -> None:
    work, _ = _run(1, 0, "measuring", output, counter=False)
    result = _within(NEVER_HANGS_S, work)
    (domain,) = result.energy.domains
    assert domain.method == "integrated"
    assert domain.energy_j is not None and domain.energy_j > 0  # what it answered, not 0 J
    assert result.energy.confidence == "low"
    assert any("partial" in w.message for w in result.warnings)


def test_a_gpu_lost_before_the_window_fails_cleanly_and_writes_nothing(output: Path) -> None:
    work, reporter = _run(2, 1, "warm-up", output)
    with pytest.raises(EnergyError, match=r"window's start.*GPU is lost"):
        _within(NEVER_HANGS_S, work)
    assert reporter.lost
    assert not output.exists()
