"""Wall time of one study on the ray executor (3 parallel slots) against the local executor.

Runs the same 6-run study (3 fake-engine configs x 2 cycles, gaps 0) twice through
``llenergymeasure.run_study``: once on a local Ray cluster with 3 CPUs and 3 fake GPUs
(one run per GPU, so 3 at a time), once on the local executor (one at a time). The fake
engine sleeps a fixed time per token, so a run's window is not CPU-bound and parallel
runs do not slow each other down on a small machine. The cluster is started before the
clock runs (a cluster already exists when a study is sent to it); its workers start
cold, so their start-up (imports, the fork server) is inside the ray figure. Target:
ray / local <= 0.45.

    python bench/ray_speedup.py [--prompts 4] [--tokens 50] [--token-latency-ms 150]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from llenergymeasure import run_study
from llenergymeasure.config.study import StudyPlan, expand_study
from llenergymeasure.study.ray_executor import RayExecutor, import_ray

N_SLOTS = 3


def study(prompts: int, tokens: int, token_latency_ms: float, tmp: Path) -> StudyPlan:
    """3 configs (they differ only in a 1-3 ms prefill) x 2 cycles = 6 runs of equal length."""
    data = {
        "study_name": "ray-speedup",
        "engine": "fake",
        "task": {"dataset": {"n_prompts": prompts}, "max_output_tokens": tokens},
        "fake": {"batch_size": 1, "token_latency_ms": token_latency_ms},
        "measurement": {
            "energy_sampler": "estimate",
            "warmup": {"enabled": False},
            "baseline": {"enabled": False},
        },
        "sweep": {"fake.prefill_latency_ms": [1, 2, 3]},
        "study_execution": {
            "n_cycles": 2,
            "experiment_order": "interleave",
            "experiment_gap_s": 0,
            "cycle_gap_s": 0,
        },
    }
    return expand_study(data, base_dir=tmp, name="ray-speedup")


def timed(label: str, plan: StudyPlan, root: Path, executor: RayExecutor | None) -> float:
    began = time.perf_counter()
    outcome = run_study(plan, results_root=root, executor=executor, on_gpu=False)
    wall = time.perf_counter() - began
    runs = outcome.manifest.entries
    durations = ", ".join(f"{e.duration_s:.1f}" for e in runs if e.duration_s is not None)
    print(f"{label:>6}: {outcome.status}, {len(runs)} runs in {wall:.1f} s (runs: {durations} s)")
    if outcome.status != "completed":
        raise SystemExit(f"the {label} study did not complete: {outcome.manifest}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4, help="prompts per run (batch size 1)")
    parser.add_argument("--tokens", type=int, default=50, help="output tokens per prompt")
    parser.add_argument("--token-latency-ms", type=float, default=150.0)
    args = parser.parse_args()
    window_s = args.prompts * args.tokens * args.token_latency_ms / 1000
    print(f"6 runs of a ~{window_s:.0f} s window each; ray on {N_SLOTS} slots")
    ray = import_ray()
    with tempfile.TemporaryDirectory() as tmp:
        plan = study(args.prompts, args.tokens, args.token_latency_ms, Path(tmp))
        began = time.perf_counter()
        ray.init(
            num_cpus=N_SLOTS,
            num_gpus=N_SLOTS,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
        print(f"cluster started in {time.perf_counter() - began:.1f} s (not counted)")
        try:
            on_ray = timed("ray", plan, Path(tmp) / "ray", RayExecutor())
        finally:
            ray.shutdown()
        here = timed("local", plan, Path(tmp) / "local", None)
    print(f"ray / local = {on_ray / here:.2f} (target <= 0.45)")


if __name__ == "__main__":
    main()
