"""Across-cycle statistics of a study: mean, sample std and a Student-t 95 % interval."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from llenergymeasure.study.manifest import MANIFEST_FILE, Manifest, ManifestEntry
from llenergymeasure.study.models import (
    Aggregate,
    ConfigAggregate,
    HeadlineMetrics,
    StudyProtocol,
    StudyResult,
    StudySummary,
)
from llenergymeasure.study.parity import study_parity

__all__ = [
    "STUDY_FILE",
    "STUDY_RESULT_FILE",
    "aggregate",
    "build_study_result",
    "completed_energy",
    "t_critical_95",
]

STUDY_FILE = "study.yaml"
STUDY_RESULT_FILE = "study_result.json"

# Two-sided 95 % critical values of Student's t for 1..30 degrees of freedom.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959963984540054


def t_critical_95(df: int) -> float:
    """The two-sided 95 % critical value of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if df <= len(_T95):
        return _T95[df - 1]
    # Beyond the table: the Cornish-Fisher expansion around the normal quantile
    # (error below 1e-3 from df 30 on, and it tends to 1.96).
    z = _Z975
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def aggregate(values: Sequence[float]) -> Aggregate:
    """Mean, sample std (n-1) and the 95 % CI of the mean; None where too few values."""
    n = len(values)
    if n == 0:
        return Aggregate(
            n=0, mean=None, std=None, ci95_half_width=None, ci95_low=None, ci95_high=None
        )
    mean = math.fsum(values) / n
    if n < 2:
        return Aggregate(
            n=n, mean=mean, std=None, ci95_half_width=None, ci95_low=None, ci95_high=None
        )
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_critical_95(n - 1) * std / math.sqrt(n)
    return Aggregate(
        n=n, mean=mean, std=std, ci95_half_width=half, ci95_low=mean - half, ci95_high=mean + half
    )


def build_study_result(
    manifest: Manifest,
    *,
    protocol: StudyProtocol,
    wall_time_s: float,
    study_dir: Path | None = None,
) -> StudyResult:
    """The study's ``study_result.json`` content, from its manifest.

    With ``study_dir``, the completed runs' result files are read for the engine parity block.
    """
    completed = [e for e in manifest.entries if e.status == "completed"]
    return StudyResult(
        name=manifest.name,
        design_hash=manifest.design_hash,
        status=manifest.status,
        protocol=protocol,
        files=(
            MANIFEST_FILE,
            STUDY_FILE,
            *(f"{e.result}/result.json" for e in completed if e.result is not None),
        ),
        summary=_summary(manifest.entries, wall_time_s),
        aggregates=_per_config(manifest.entries),
        parity=study_parity(study_dir, manifest.entries) if study_dir is not None else None,
    )


def _summary(entries: Sequence[ManifestEntry], wall_time_s: float) -> StudySummary:
    def count(*statuses: str) -> int:
        return sum(e.status in statuses for e in entries)

    known, estimated = completed_energy(entries)
    return StudySummary(
        n_planned=len(entries),
        n_completed=count("completed"),
        n_failed=count("failed", "crashed", "timed_out"),
        n_interrupted=count("interrupted"),
        n_skipped=count("pending", "running"),
        wall_time_s=wall_time_s,
        run_time_s=math.fsum(e.duration_s for e in entries if e.duration_s is not None),
        total_energy_j=math.fsum(known) if known else None,
        n_energy_unknown=count("completed") - len(known) - len(estimated),
        estimated_energy_j=math.fsum(estimated) if estimated else None,
    )


def completed_energy(entries: Sequence[ManifestEntry]) -> tuple[list[float], list[float]]:
    """The energy of each completed run with a figure: measured, and estimated, apart
    (never to be summed together)."""
    measured: list[float] = []
    estimated: list[float] = []
    for e in entries:
        if e.status != "completed" or e.metrics is None or e.metrics.energy_j is None:
            continue
        (estimated if e.metrics.estimated else measured).append(e.metrics.energy_j)
    return measured, estimated


def _energy_of(metrics: Sequence[HeadlineMetrics]) -> tuple[list[HeadlineMetrics], str | None]:
    """The runs whose J/output token a config pools, and how it was got: the measured
    runs where any measured, else the estimated ones (never both in one figure)."""
    with_energy = [m for m in metrics if m.j_per_output_token is not None]
    measured = [m for m in with_energy if not m.estimated]
    pooled = measured or with_energy
    methods = sorted({m.energy_method for m in pooled if m.energy_method is not None})
    return pooled, ", ".join(methods) or None


def _per_config(entries: Sequence[ManifestEntry]) -> tuple[ConfigAggregate, ...]:
    groups: dict[str, list[ManifestEntry]] = {}
    for entry in entries:
        groups.setdefault(entry.config_hash, []).append(entry)
    aggregates = []
    for group in groups.values():
        metrics = [e.metrics for e in group if e.status == "completed" and e.metrics is not None]
        with_energy, energy_method = _energy_of(metrics)
        first = group[0]
        aggregates.append(
            ConfigAggregate(
                index=first.index,
                label=first.label,
                config_hash=first.config_hash,
                n_completed=len(metrics),
                j_per_output_token=aggregate(
                    [m.j_per_output_token for m in with_energy if m.j_per_output_token is not None]
                ),
                output_tokens_per_s=aggregate([m.output_tokens_per_s for m in metrics]),
                j_per_request=_known(m.j_per_request for m in metrics),
                goodput_per_s=_known(m.goodput_per_s for m in metrics),
                energy_method=energy_method,
            )
        )
    return tuple(sorted(aggregates, key=lambda a: a.index))


def _known(values: Iterable[float | None]) -> Aggregate | None:
    """The aggregate of the values measured; None when no run has one (offline configs)."""
    known = [v for v in values if v is not None]
    return aggregate(known) if known else None
