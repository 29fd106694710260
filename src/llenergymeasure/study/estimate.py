"""How long a study will take, from what is known before it runs.

Thermal gaps are known exactly. A config that already ran (any earlier study or run
under the same results folder, found by its config hash in the folder name) is
timed from that result. For a config never run before only the fixed parts are
known (baseline and thermal floor on a GPU); its inference time is not guessed.
"""

from __future__ import annotations

import itertools
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.config.order import effective_gaps
from llenergymeasure.config.study import StudyPlan
from llenergymeasure.experiment.warmup import GPU_MIN_THERMAL_FLOOR_S

__all__ = ["DurationEstimate", "estimate_duration"]

# Start-up cost of one isolated run (fork, pre-flight, load from cache), measured by
# bench/study_overhead.py on a 2-core CPU: about 1 s.
RUN_OVERHEAD_S = 1.0


@dataclass(frozen=True)
class DurationEstimate:
    gaps_s: float
    timed_s: float
    n_timed_runs: int
    fixed_s: float
    n_untimed_runs: int

    @property
    def total_s(self) -> float:
        """A lower bound while some runs are untimed (their inference is not included)."""
        return self.gaps_s + self.timed_s + self.fixed_s


def estimate_duration(plan: StudyPlan, *, on_gpu: bool, results_root: Path) -> DurationEstimate:
    """Gaps + earlier measured durations of the same configs + fixed parts of new ones."""
    runs = plan.runs()
    ex = plan.execution
    experiment_gap, cycle_gap = effective_gaps(ex.experiment_gap_s, ex.cycle_gap_s, on_gpu=on_gpu)
    cycle_changes = sum(1 for a, b in itertools.pairwise(runs) if a.cycle != b.cycle)
    gaps = cycle_changes * cycle_gap + max(len(runs) - 1 - cycle_changes, 0) * experiment_gap
    history = _earlier_durations(results_root, {h[:8] for h in plan.config_hashes})
    timed = fixed = 0.0
    n_timed = 0
    for run in runs:
        earlier = history.get(plan.config_hashes[run.config_index][:8])
        if earlier is not None:
            timed += earlier + RUN_OVERHEAD_S
            n_timed += 1
        elif on_gpu:
            m = plan.configs[run.config_index].measurement
            baseline = m.baseline.duration_s if m.baseline.enabled else 0.0
            fixed += baseline + max(m.warmup.thermal_floor_s, GPU_MIN_THERMAL_FLOOR_S)
    return DurationEstimate(
        gaps_s=gaps,
        timed_s=timed,
        n_timed_runs=n_timed,
        fixed_s=fixed,
        n_untimed_runs=len(runs) - n_timed,
    )


def _earlier_durations(root: Path, hash8s: set[str]) -> dict[str, float]:
    """Median ``timings.total_s`` of earlier results, by the hash8 that ends their folder name."""
    found: dict[str, list[float]] = {}
    if not root.is_dir():
        return {}
    for result in root.glob("*/*/result.json"):
        hash8 = result.parent.name.rsplit("_", 1)[-1]
        if hash8 not in hash8s:
            continue
        try:
            found.setdefault(hash8, []).append(
                float(json.loads(result.read_text(encoding="utf-8"))["timings"]["total_s"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an unreadable earlier result only makes the estimate vaguer
    return {h: statistics.median(v) for h, v in found.items()}
