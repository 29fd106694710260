"""Across-cycle statistics on known numbers, and study_result built from a manifest."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timezone

import pytest

from llenergymeasure.study.manifest import EntryStatus, Manifest, ManifestEntry
from llenergymeasure.study.models import HeadlineMetrics, StudyProtocol, StudyResult
from llenergymeasure.study.stats import aggregate, build_study_result, t_critical_95

PROTOCOL = StudyProtocol(
    n_cycles=3,
    experiment_order="sequential",
    experiment_gap_s=0.0,
    cycle_gap_s=0.0,
    experiment_timeout_s=600.0,
    max_consecutive_failures=10,
)


def test_one_two_three() -> None:
    stats = aggregate([1.0, 2.0, 3.0])
    assert stats.n == 3
    assert stats.mean == 2.0
    assert stats.std == pytest.approx(1.0)
    assert stats.ci95_half_width == pytest.approx(4.303 / math.sqrt(3))
    assert stats.ci95_low == pytest.approx(2.0 - 4.303 / math.sqrt(3))
    assert stats.ci95_high == pytest.approx(2.0 + 4.303 / math.sqrt(3))


def test_too_few_values_give_none_not_zero() -> None:
    empty = aggregate([])
    assert (empty.n, empty.mean, empty.std, empty.ci95_half_width) == (0, None, None, None)
    one = aggregate([5.0])
    assert (one.n, one.mean, one.std, one.ci95_low, one.ci95_high) == (1, 5.0, None, None, None)


def test_identical_values_have_a_zero_width_interval() -> None:
    stats = aggregate([0.25, 0.25])
    assert stats.std == 0.0
    assert stats.ci95_half_width == 0.0


@pytest.mark.parametrize(("df", "t"), [(1, 12.706), (2, 4.303), (9, 2.262), (30, 2.042)])
def test_t_table(df: int, t: float) -> None:
    assert t_critical_95(df) == t


def test_t_beyond_the_table_continues_smoothly_towards_1_96() -> None:
    # Reference values of the t distribution (two-sided 95 %).
    assert t_critical_95(40) == pytest.approx(2.021, abs=1e-3)
    assert t_critical_95(60) == pytest.approx(2.000, abs=1e-3)
    assert t_critical_95(120) == pytest.approx(1.980, abs=1e-3)
    values = [t_critical_95(df) for df in range(1, 500)]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert t_critical_95(10**6) == pytest.approx(1.96, abs=1e-3)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_critical_95(0)


def entry(
    index: int, cycle: int, status: EntryStatus, tps: float = 0.0, jpt: float | None = None
) -> ManifestEntry:
    metrics = None
    if status == "completed":
        energy = None if jpt is None else jpt * 10
        metrics = HeadlineMetrics(
            output_tokens_per_s=tps,
            j_per_output_token=jpt,
            energy_j=energy,
            energy_method="counter" if jpt is not None else None,
            window_s=1.0,
        )
    return ManifestEntry(
        index=index,
        label=f"cfg{index}",
        config_hash=f"{index:016x}",
        cycle=cycle,
        status=status,
        duration_s=None if status == "pending" else 2.0,
        result=f"{index:03d}_c{cycle}_x" if status == "completed" else None,
        metrics=metrics,
    )


def test_study_result_from_a_manifest() -> None:
    now = datetime.now(timezone.utc)
    manifest = Manifest(
        name="s",
        design_hash="d" * 16,
        status="failed",
        created_at=now,
        updated_at=now,
        entries=(
            entry(1, 1, "completed", 10.0, 1.0),
            entry(2, 1, "completed", 20.0, None),
            entry(1, 2, "completed", 20.0, 2.0),
            entry(2, 2, "crashed"),
            entry(1, 3, "completed", 30.0, 3.0),
            entry(2, 3, "pending"),
        ),
    )
    result = build_study_result(manifest, protocol=PROTOCOL, wall_time_s=12.5)
    assert result.status == "failed"
    assert result.files == (
        "manifest.json",
        "study.yaml",
        "001_c1_x/result.json",
        "002_c1_x/result.json",
        "001_c2_x/result.json",
        "001_c3_x/result.json",
    )
    summary = result.summary
    assert (summary.n_planned, summary.n_completed, summary.n_failed, summary.n_skipped) == (
        6,
        4,
        1,
        1,
    )
    assert summary.total_energy_j == pytest.approx(60.0)
    assert summary.n_energy_unknown == 1
    assert summary.run_time_s == pytest.approx(10.0)
    assert summary.wall_time_s == 12.5
    first, second = result.aggregates
    assert (first.index, first.n_completed) == (1, 3)
    assert first.j_per_output_token.mean == pytest.approx(2.0)
    assert first.j_per_output_token.ci95_half_width == pytest.approx(4.303 / math.sqrt(3))
    assert first.output_tokens_per_s.mean == pytest.approx(20.0)
    assert second.n_completed == 1
    assert second.j_per_output_token.n == 0 and second.j_per_output_token.mean is None
    assert second.output_tokens_per_s.std is None
    assert StudyResult.model_validate_json(result.model_dump_json()) == result


def _with_method(e: ManifestEntry, method: str) -> ManifestEntry:
    assert e.metrics is not None
    return e.model_copy(update={"metrics": e.metrics.model_copy(update={"energy_method": method})})


def test_estimates_are_summed_and_pooled_apart_from_measurements() -> None:
    now = datetime.now(timezone.utc)
    entries = [
        entry(1, 1, "completed", tps=10.0, jpt=1.0),  # 10 J counter
        _with_method(entry(1, 2, "completed", tps=10.0, jpt=5.0), "estimated"),  # 50 J estimate
        _with_method(entry(2, 1, "completed", tps=10.0, jpt=3.0), "estimated"),  # 30 J estimate
        entry(3, 1, "completed", tps=10.0),  # no figure
    ]
    manifest = Manifest(
        name="s", design_hash="d" * 16, status="completed", created_at=now, updated_at=now,
        entries=entries,
    )  # fmt: skip
    result = build_study_result(manifest, protocol=PROTOCOL, wall_time_s=1.0)
    summary = result.summary
    assert summary.total_energy_j == pytest.approx(10.0)
    assert summary.estimated_energy_j == pytest.approx(80.0)
    assert summary.n_energy_unknown == 1
    measured, estimated, unknown = result.aggregates
    # config 1 ran once measured, once estimated: only the measurement is pooled
    assert (measured.energy_method, measured.j_per_output_token.n) == ("counter", 1)
    assert measured.j_per_output_token.mean == pytest.approx(1.0)
    assert (estimated.energy_method, estimated.j_per_output_token.mean) == ("estimated", 3.0)
    assert (unknown.energy_method, unknown.j_per_output_token.n) == (None, 0)

    from rich.console import Console

    from llenergymeasure.cli.study_tables import summary_table

    console = Console(record=True, width=200)
    console.print(summary_table(result))
    text = " ".join(console.export_text().split())  # the caption wraps to the table's width
    assert "3.0000 (estimated)" in text and "1.0000 (estimated)" not in text
    assert "measured energy 10.0 J; estimated energy 80.0 J (not in the measured total)" in text
