"""Per-run overhead of a study beyond the experiment itself: spawn, imports, model load, files.

Runs a 4-config x 3-cycle study of the bundled model (``-n 5``, gaps 0) through
``llenergymeasure.run_study``. For every run, the overhead is the run's wall time as
the parent saw it (spawn to outcome) minus the experiment's own timed steps after
loading (prepare, warm-up, window: ``total_s - preflight_s - load_s``), so it holds the
subprocess start, the imports, pre-flight, loading the model from the safetensors
cache and writing the result files. Target: <= 3 s per run on a 2-core CPU.

    python bench/study_overhead.py [--n-prompts 5] [--cycles 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from llenergymeasure import run_study

STUDY = """\
study_name: overhead
task: {{model: smollm2-135m, dataset: {{n_prompts: {n}}}, max_output_tokens: 8}}
transformers: {{dtype: float32, sampling: {{do_sample: false}}}}
measurement: {{warmup: {{n_warmup: 1}}}}
sweep:
  transformers.batch_size: [1, 4]
  task.max_output_tokens: [4, 8]
study_execution:
  n_cycles: {cycles}
  experiment_order: interleave
  experiment_gap_s: 0
  cycle_gap_s: 0
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-prompts", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "study.yaml"
        study.write_text(STUDY.format(n=args.n_prompts, cycles=args.cycles), encoding="utf-8")
        began = time.perf_counter()
        outcome = run_study(study, results_root=Path(tmp) / "results", on_gpu=False)
        wall = time.perf_counter() - began
        overheads = []
        print(f"study {outcome.status}: {len(outcome.manifest.entries)} runs in {wall:.1f} s")
        print(f"{'run':>8} {'wall s':>8} {'experiment s':>13} {'load s':>7} {'overhead s':>11}")
        for entry in outcome.manifest.entries:
            if entry.status != "completed" or entry.result is None or entry.duration_s is None:
                print(f"{entry.index:>5}/c{entry.cycle} {entry.status}: {entry.error}")
                continue
            data = json.loads((outcome.study_dir / entry.result / "result.json").read_text())
            t = data["timings"]
            own = t["total_s"] - t["preflight_s"] - t["load_s"]
            overhead = entry.duration_s - own
            overheads.append(overhead)
            print(
                f"{entry.index:>5}/c{entry.cycle} {entry.duration_s:>8.2f} {own:>13.2f} "
                f"{t['load_s']:>7.2f} {overhead:>11.2f}"
            )
    if overheads:
        print(
            f"overhead per run: mean {statistics.fmean(overheads):.2f} s, "
            f"median {statistics.median(overheads):.2f} s, max {max(overheads):.2f} s "
            f"over {len(overheads)} runs (target <= 3 s)"
        )


if __name__ == "__main__":
    main()
