"""Build time and size of the HTML report of a 12-run study. Bars: <= 5 s and <= 5 MB.

Runs a 4-config x 3-cycle study (``fake.batch_size: [1, 2, 4, 8]``) through
``llenergymeasure.run_study`` with the fake engine measured on a simulated NVIDIA GPU
(the NVML simulation shipped in the package: power rising with the batch size, a warming
die, thermal throttling in the largest config), each run in this process so that the
GPU can be simulated. The runs write the real study folder (manifest, study result,
result.json and timeseries.parquet per run); then the report is built from those files,
``--repeats`` times, and the median build time and the file size are printed with their
ratios to the bars.

    python bench/report.py [--interval-ms 10] [--n-prompts 16] [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from threading import Event

from llenergymeasure import run_experiment, run_study
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import load_study
from llenergymeasure.energy.nvml import NvmlSampler, NvmlTelemetry
from llenergymeasure.energy.process import ProcessTelemetry
from llenergymeasure.records.files import write_experiment
from llenergymeasure.report.html import write_report
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.isolation import RunLimits, RunOutcome
from llenergymeasure.study.models import HeadlineMetrics
from llenergymeasure.testing.simulated_nvml import SimulatedGpu, SimulatedNvml

BAR_S = 5.0
BAR_BYTES = 5 * 1024 * 1024
SW_THERMAL = 0x20

STUDY = """\
study_name: report-bench
engine: fake
task: {{dataset: {{n_prompts: {n}}}, max_output_tokens: 32}}
fake: {{token_latency_ms: 4}}
measurement:
  sample_interval_ms: {interval}
  warmup: {{n_warmup: 2, thermal_floor_s: 0}}
  baseline: {{duration_s: 0.3, strategy: fresh}}
sweep:
  fake.batch_size: [1, 2, 4, 8]
study_execution: {{n_cycles: 3, experiment_order: interleave}}
"""


def simulated_gpu(batch_size: int) -> SimulatedNvml:
    """A GPU whose power grows with the batch size; the largest batch throttles mid-run."""
    watts = 90.0 + 30.0 * math.log2(batch_size)

    def throttle(t: float) -> int:
        return SW_THERMAL if batch_size == 8 and 0.5 <= t % 1.0 < 0.7 else 0

    gpu = SimulatedGpu(
        "NVIDIA H100 80GB HBM3 (simulated)",
        f"GPU-sim-{batch_size}",
        power_w=lambda t: watts + 8.0 * math.sin(6.0 * t),
        temperature_c=lambda t: 45.0 + 4.0 * batch_size**0.5 * (1.0 - math.exp(-t / 2.0)),
        sm_clock_mhz=lambda t: 1410.0 if throttle(t) else 1980.0,
        utilisation_pct=lambda t: min(100.0, 30.0 + 10.0 * batch_size),
        memory_used_mib=2_000.0 + 500.0 * batch_size,
        throttle_reasons=throttle,
        # published continuously: these windows are shorter than a real counter's 100 ms step
        update_period_s=None,
    )
    return SimulatedNvml([gpu], call_latency_s=0.0)


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
    """One experiment on a simulated GPU, in this process, written like an isolated child."""
    began = time.monotonic()
    nvml = simulated_gpu(config.batch_size)
    result = run_experiment(
        config,
        sampler=NvmlSampler(["cuda:0"], nvml=nvml, environ={}),
        telemetry=[NvmlTelemetry(["cuda:0"], nvml=nvml, environ={}), ProcessTelemetry()],
    )
    folder = write_experiment(result, study_dir, index=index, cycle=cycle)
    return RunOutcome(
        "completed",
        time.monotonic() - began,
        result_dir=folder,
        metrics=HeadlineMetrics.of(result),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval-ms", type=int, default=10, help="trace sampling period")
    parser.add_argument("--n-prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the study and report here, and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        study_file = root / "study.yaml"
        study_file.write_text(
            STUDY.format(n=args.n_prompts, interval=args.interval_ms), encoding="utf-8"
        )
        began = time.perf_counter()
        outcome = run_study(
            load_study(study_file),
            results_root=root / "results",
            run_one=run_in_process,
            on_gpu=False,
        )
        n_done = outcome.result.summary.n_completed
        n_rows = sum(_rows(p) for p in outcome.study_dir.glob("*/timeseries.parquet"))
        print(
            f"study {outcome.status}: {n_done} runs completed in "
            f"{time.perf_counter() - began:.1f} s; {n_rows:,} trace rows in all"
        )
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            report = write_report(outcome.study_dir, root / "report.html")
            times.append(time.perf_counter() - start)
        build_s = statistics.median(times)
        size = report.stat().st_size
        print(
            f"report build: {build_s:.3f} s (median of {args.repeats}; "
            f"{build_s / BAR_S:.1%} of the {BAR_S:g} s bar)"
        )
        print(
            f"report size:  {size / 1024:,.0f} KiB ({size / BAR_BYTES:.1%} of the "
            f"{BAR_BYTES // 2**20} MiB bar)"
        )


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    rows: int = pq.ParquetFile(path).metadata.num_rows
    return rows


if __name__ == "__main__":
    main()
