"""Whole experiments on simulated H200s: the fake engine holds a CUDA context on the GPU from
load to close and keeps it busy while it generates, so the board's power does what a real
engine makes it do (80 W idle, 120 W with the engine loaded, 685 W at the power cap).

The one home of the short run every test folder uses on the simulated H200: a test
states only what it changes (:func:`h200_config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llenergymeasure import run_experiment
from llenergymeasure.config.loading import deep_merge
from llenergymeasure.experiment.options import RunOptions
from llenergymeasure.experiment.reporter import NullReporter
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.testing.h200 import h200_nvml
from llenergymeasure.testing.simulated_gpu_engine import SimulatedGpuEngine
from llenergymeasure.testing.simulated_nvml import SimulatedNvml

# Short, so a test takes seconds: 1 s idle figures and 1.2 s windows. The counter steps
# every 100 ms, so their figures are good to ~10 % (a real run's 30 s baseline: 0.3 %).
CONFIG: dict[str, Any] = {
    "engine": "fake",
    "fake": {"token_latency_ms": 5, "batch_size": 2},
    "task": {"dataset": {"n_prompts": 4}, "max_output_tokens": 10},
    "measurement": {
        "sample_interval_ms": 20,
        "min_window_s": 1.2,
        "warmup": {"enabled": False},
        "baseline": {"duration_s": 1.0, "spot_check_s": 1.0, "strategy": "fresh"},
    },
}


def h200_config(change: dict[str, Any] | None = None) -> dict[str, Any]:
    """:data:`CONFIG` with ``change`` merged over it (mappings key by key)."""
    return deep_merge(CONFIG, change or {})


class Waits(NullReporter):
    """Records every wait (and its reason) instead of only sleeping."""

    def __init__(self) -> None:
        self.waits: list[tuple[float, str]] = []

    def wait(self, seconds: float, reason: str) -> None:
        self.waits.append((seconds, reason))
        super().wait(seconds, reason)


def run_h200(
    change: dict[str, Any] | None = None,
    *,
    nvml: SimulatedNvml | None = None,
    engine: SimulatedGpuEngine | None = None,
    options: RunOptions | None = None,
    reporter: NullReporter | None = None,
    output_dir: Path | None = None,
) -> ExperimentResult:
    """One experiment on the simulated GPUs (one H200 unless ``nvml`` says otherwise)."""
    nvml = nvml or h200_nvml()
    return run_experiment(
        h200_config(change),
        engine=engine or SimulatedGpuEngine(nvml),
        nvml=nvml,
        options=options or RunOptions(),
        reporter=reporter,
        output_dir=output_dir,
    )
