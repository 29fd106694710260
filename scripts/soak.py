#!/usr/bin/env python3
"""Soak test: repeat runs for N minutes in one process and watch RSS, open fds and threads.

Not part of CI. Each iteration runs one fake-engine experiment in this process (pre-flight,
power trace threads, window, metrics, atomic writes) and, every ``--study-every``
iterations, a two-run study whose runs are isolated subprocesses (pipes, queues, the fork
server); with ``--bundled-every N`` every N-th iteration also runs the real bundled model
on the CPU. A leak of memory, file descriptors or threads in any of those paths shows as
growth between the start and the end of the soak. Usage::

    .venv/bin/python scripts/soak.py --minutes 30
    .venv/bin/python scripts/soak.py --minutes 2 --bundled-every 5 --json soak.json

The first ``--settle`` iterations, and every iteration up to the first study and the first
bundled-model run, are not counted: imports, caches and the fork server are paid once.
Growth is the median of the last tenth of the samples minus the median of the first
tenth; the soak passes when RSS, fd and thread growth stay within the bounds.
Exit status: 0 pass, 1 growth beyond a bound, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import expand_study
from llenergymeasure.experiment.run import run_experiment, write_single_run
from llenergymeasure.study.run import run_study

_MIB = 2**20

FAKE: dict[str, Any] = {
    "engine": "fake",
    "fake": {"token_latency_ms": 2, "prefill_latency_ms": 5, "batch_size": 2},
    "task": {"dataset": {"n_prompts": 8}, "max_output_tokens": 8},
    "measurement": {
        "energy_sampler": "estimate",
        "sample_interval_ms": 10,
        "warmup": {"enabled": True, "n_warmup": 1, "thermal_floor_s": 0},
        "baseline": {"enabled": False},
    },
}
BUNDLED: dict[str, Any] = {
    "task": {"model": "smollm2-135m", "dataset": {"n_prompts": 2}, "max_output_tokens": 4},
    "measurement": {
        "energy_sampler": "estimate",
        "warmup": {"enabled": False},
        "baseline": {"enabled": False},
    },
}


@dataclass(frozen=True)
class Sample:
    """Process facts after one iteration."""

    iteration: int
    elapsed_s: float
    rss_mib: float
    n_fds: int
    n_threads: int
    n_children: int


def sample(iteration: int, began: float) -> Sample:
    """RSS, open fds, threads and live child processes of this process, now."""
    me = psutil.Process()
    return Sample(
        iteration=iteration,
        elapsed_s=time.monotonic() - began,
        rss_mib=me.memory_info().rss / _MIB,
        n_fds=me.num_fds(),
        n_threads=me.num_threads(),
        n_children=len(me.children(recursive=True)),
    )


def growth(values: list[float]) -> float:
    """Median of the last tenth minus the median of the first tenth (at least 3 each)."""
    k = max(3, len(values) // 10)
    return statistics.median(values[-k:]) - statistics.median(values[:k])


def one_iteration(iteration: int, work: Path, args: argparse.Namespace) -> None:
    """One experiment in this process; a study and the bundled model when due."""
    result = run_experiment(ExperimentConfig.model_validate(FAKE))
    write_single_run(result, work / "single")
    if args.study_every and iteration % args.study_every == 0:
        plan = expand_study(
            {
                **FAKE,
                "study_name": "soak",
                "sweep": {"fake.batch_size": [1, 2]},
                "study_execution": {"n_cycles": 1, "experiment_gap_s": 0, "cycle_gap_s": 0},
            },
            base_dir=work,
            name="soak",
        )
        outcome = run_study(plan, results_root=work / "studies", on_gpu=False)
        if outcome.status != "completed":
            raise SystemExit(f"soak study {outcome.study_dir} ended {outcome.status}")
    if args.bundled_every and iteration % args.bundled_every == 0:
        run_experiment(ExperimentConfig.model_validate(BUNDLED))
    if iteration % 20 == 0:  # keep the disk use flat: the folders are not what is measured
        shutil.rmtree(work / "single", ignore_errors=True)
        shutil.rmtree(work / "studies", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print the figures; 0 when every growth is within its bound."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to soak")
    parser.add_argument("--study-every", type=int, default=10, help="0 = no studies")
    parser.add_argument("--bundled-every", type=int, default=0, help="0 = fake engine only")
    parser.add_argument(
        "--settle", type=int, default=10, help="iterations not counted (imports, fork server)"
    )
    parser.add_argument("--rss-bound-mib", type=float, default=64.0)
    parser.add_argument("--fd-bound", type=int, default=4)
    parser.add_argument("--thread-bound", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write every sample here")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.settle < 0:
        parser.error("--minutes must be > 0 and --settle >= 0")
    # Results go to a scratch folder (the converted bundled model stays in the user cache).
    work = Path(tempfile.mkdtemp(prefix="llem-soak-"))
    began = time.monotonic()
    deadline = began + args.minutes * 60
    samples: list[Sample] = []
    iteration = 0
    try:
        while time.monotonic() < deadline:
            iteration += 1
            one_iteration(iteration, work, args)
            samples.append(sample(iteration, began))
            if iteration % 50 == 0:
                s = samples[-1]
                print(
                    f"[{s.elapsed_s / 60:5.1f} min] iteration {iteration}: "
                    f"rss {s.rss_mib:.1f} MiB, fds {s.n_fds}, threads {s.n_threads}, "
                    f"children {s.n_children}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    settle = max(args.settle, args.study_every, args.bundled_every)
    counted = samples[settle:]
    if len(counted) < 6:
        print(f"only {len(counted)} counted iterations: soak longer", file=sys.stderr)
        return 2
    rss = growth([s.rss_mib for s in counted])
    fds = growth([float(s.n_fds) for s in counted])
    threads = growth([float(s.n_threads) for s in counted])
    checks = [
        ("RSS", rss, args.rss_bound_mib, "MiB"),
        ("open fds", fds, float(args.fd_bound), ""),
        ("threads", threads, float(args.thread_bound), ""),
    ]
    first, last = counted[0], counted[-1]
    print(
        f"soak: {iteration} iterations in {last.elapsed_s / 60:.1f} min "
        f"(study every {args.study_every or 'never'}, bundled model every "
        f"{args.bundled_every or 'never'}), {settle} settling iterations not counted"
    )
    print(
        f"RSS {first.rss_mib:.1f} -> {last.rss_mib:.1f} MiB (max "
        f"{max(s.rss_mib for s in counted):.1f}); fds {first.n_fds} -> {last.n_fds}; "
        f"threads {first.n_threads} -> {last.n_threads}; children at the end {last.n_children}"
    )
    ok = True
    for name, value, bound, unit in checks:
        verdict = "ok" if value <= bound else "FAIL"
        ok = ok and value <= bound
        print(f"  {name} growth {value:+.1f}{unit} (bound {bound:g}{unit}): {verdict}")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"samples": [asdict(s) for s in samples], "pass": ok}, indent=1) + "\n",
            encoding="utf-8",
        )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
