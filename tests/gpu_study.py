"""A small real study measured on a simulated GPU, for the export, compare and report tests.

The study file is expanded by the real sweep expansion and run by the real study spine;
only the place where each experiment runs differs: in this process (so that the GPU can
be the NVML simulation shipped in the package) instead of an isolated child. Each run is
written exactly as an isolated child writes it. Run ``1/c2`` fails on purpose.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from threading import Event

from llenergymeasure import run_experiment, run_study
from llenergymeasure.config.loading import UserConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import load_study
from llenergymeasure.energy.nvml import NvmlSampler, NvmlTelemetry
from llenergymeasure.energy.process import ProcessTelemetry
from llenergymeasure.records.files import write_experiment
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.isolation import RunLimits, RunOutcome
from llenergymeasure.study.models import HeadlineMetrics
from llenergymeasure.testing.simulated_nvml import SimulatedGpu, SimulatedNvml

SW_THERMAL = 0x20
THROTTLED_BATCH = 2  # this config's GPU reports thermal throttling
FAILING_RUN = (1, 2)  # (index, cycle)

STUDY = """\
study_name: gpu-study
engine: fake
task: {dataset: {n_prompts: 4}, max_output_tokens: 8}
fake: {token_latency_ms: 3}
measurement:
  sample_interval_ms: 10
  warmup: {n_warmup: 1, thermal_floor_s: 0}
  baseline: {enabled: false}
sweep:
  fake.batch_size: [1, 2, 4]
study_execution: {n_cycles: 2, experiment_order: interleave}
"""


def simulated_gpu(batch_size: int) -> SimulatedNvml:
    """Power grows with the batch size; one config's GPU is thermally throttled throughout.

    Throttling throughout, not in a time span: on a loaded machine the trace may start
    late in the script's time, and the throttled config must show it whatever the timing.
    """
    throttled = batch_size == THROTTLED_BATCH
    return SimulatedNvml(
        [
            SimulatedGpu(
                "NVIDIA H100 (simulated)",
                f"GPU-sim-{batch_size}",
                power_w=100.0 + 40.0 * math.log2(batch_size),
                temperature_c=lambda t: 50.0 + 20.0 * t,
                sm_clock_mhz=1400.0 if throttled else 1980.0,
                utilisation_pct=90.0,
                throttle_reasons=SW_THERMAL if throttled else 0,
                # sensors published continuously: these windows last tens of milliseconds,
                # well under the 100 ms a real counter steps by
                update_period_s=None,
            )
        ],
        call_latency_s=0.0,
    )


def run_in_process(
    config: ExperimentConfig,
    *,
    study_dir: Path,
    index: int,
    cycle: int,
    limits: RunLimits,
    on_progress: Callable[[RunEvent], None] | None = None,
    stop_event: Event | None = None,
) -> RunOutcome:
    began = time.monotonic()
    if (index, cycle) == FAILING_RUN:
        return RunOutcome("failed", 0.01, message="EngineError: scripted failure")
    nvml = simulated_gpu(config.batch_size)
    result = run_experiment(
        config,
        sampler=NvmlSampler(["cuda:0"], nvml=nvml, environ={}),
        telemetry=[NvmlTelemetry(["cuda:0"], nvml=nvml, environ={}), ProcessTelemetry()],
        user_config=UserConfig(),
    )
    folder = write_experiment(result, study_dir, index=index, cycle=cycle)
    return RunOutcome(
        "completed", time.monotonic() - began, result_dir=folder, metrics=HeadlineMetrics.of(result)
    )


def make_gpu_study(root: Path) -> Path:
    """Run the study under ``root/results``; returns the study folder."""
    study_file = root / "study.yaml"
    study_file.write_text(STUDY, encoding="utf-8")
    plan = load_study(study_file, user=UserConfig())
    outcome = run_study(plan, results_root=root / "results", run_one=run_in_process, on_gpu=False)
    assert outcome.status == "failed", outcome.status  # the one scripted failure
    return outcome.study_dir
