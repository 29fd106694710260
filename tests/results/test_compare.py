"""Compare: headline metrics side by side with ratios; mismatched results are refused."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.errors import ResultError
from llenergymeasure.records.result import METHODOLOGY_VERSION
from llenergymeasure.results.collection import load_runs, open_results
from llenergymeasure.results.compare import HEADLINE_METRICS, compare


def _folders(study: Path) -> list[Path]:
    return [e.folder for e in open_results(study).completed if e.folder is not None]


def _copy_with(folder: Path, dest: Path, change: dict[str, Any]) -> Path:
    """A copy of an experiment folder with some result.json fields changed (dotted keys)."""
    copy = shutil.copytree(folder, dest / folder.name)
    data = json.loads((copy / "result.json").read_text())
    for dotted, value in change.items():
        *path, last = dotted.split(".")
        node = data
        for key in path:
            node = node[key]
        node[last] = value
    (copy / "result.json").write_text(json.dumps(data), encoding="utf-8")
    return copy


def test_a_study_compares_its_configs_with_means_over_cycles(gpu_study: Path) -> None:
    comparison = compare([gpu_study])
    runs = load_runs(open_results(gpu_study))
    by_config: dict[str, list[Any]] = {}
    for run in runs:
        by_config.setdefault(run.entry.label, []).append(run.result)
    assert [c.name.split(": ", 1)[1] for c in comparison.columns] == list(by_config)
    for column, results in zip(comparison.columns, by_config.values(), strict=True):
        assert column.n_runs == len(results)
        tps = [r.throughput.output_tokens_per_s for r in results]
        assert column.values["output_tokens_per_s"] == pytest.approx(math.fsum(tps) / len(tps))
    base = comparison.columns[0].values
    for column, ratios in zip(comparison.columns, comparison.ratios, strict=True):
        for metric in HEADLINE_METRICS:
            value, first = column.values[metric.key], base[metric.key]
            if value is None or first is None:
                assert ratios[metric.key] is None
            else:
                assert ratios[metric.key] == pytest.approx(value / first)
    assert comparison.ratios[0]["j_per_output_token"] == 1.0
    assert comparison.mismatches == ()


def test_two_experiment_folders_get_distinct_columns(gpu_study: Path) -> None:
    first, second = _folders(gpu_study)[:2]
    comparison = compare([first, second])
    assert [c.name for c in comparison.columns] == [first.name, second.name]
    same = compare([first, first])
    assert [c.name for c in same.columns] == [first.name, f"{first.name} #2"]
    assert same.ratios[1]["output_tokens_per_s"] == 1.0


def test_mismatched_methodology_is_refused_with_a_clear_message(
    gpu_study: Path, tmp_path: Path
) -> None:
    first = _folders(gpu_study)[0]
    old = _copy_with(first, tmp_path, {"methodology.version": "0.9"})
    with pytest.raises(ResultError) as caught:
        compare([first, old])
    message = caught.value.message
    assert message.startswith("not comparable: methodology versions differ")
    assert "0.9" in message and METHODOLOGY_VERSION in message and "\n" not in message
    assert caught.value.hint is not None and "--force" in caught.value.hint
    forced = compare([first, old], force=True)
    assert len(forced.columns) == 2
    assert forced.mismatches and forced.mismatches[0].startswith("methodology versions differ")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"energy.method": "estimated"}, "energy methods differ"),
        ({"model.device": "cuda:0"}, "devices differ"),
    ],
)
def test_other_mismatches_are_refused_too(
    gpu_study: Path, tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    first = _folders(gpu_study)[0]
    other = _copy_with(first, tmp_path, change)
    with pytest.raises(ResultError, match=problem):
        compare([first, other])


def test_one_config_alone_cannot_be_compared(gpu_study: Path) -> None:
    with pytest.raises(ResultError, match="at least two"):
        compare([_folders(gpu_study)[0]])


def _gpu(name: str, limit_w: float) -> list[dict[str, Any]]:
    return [{"index": 0, "name": name, "uuid": "GPU-x", "power_limit_w": limit_w, "in_scope": True}]


@pytest.mark.parametrize(
    ("other", "problem"),
    [
        (_gpu("NVIDIA H100 80GB HBM3", 700.0), "GPU models differ: NVIDIA H200 "),
        (_gpu("NVIDIA H200", 500.0), "GPU power limits differ: 700 W "),
    ],
)
def test_runs_on_different_gpu_models_or_power_limits_are_refused_unless_forced(
    gpu_study: Path, tmp_path: Path, other: list[dict[str, Any]], problem: str
) -> None:
    first, second = _folders(gpu_study)[:2]
    a = _copy_with(first, tmp_path / "a", {"environment.accelerators": _gpu("NVIDIA H200", 700.0)})
    b = _copy_with(second, tmp_path / "b", {"environment.accelerators": other})
    with pytest.raises(ResultError) as caught:
        compare([a, b])
    assert problem in caught.value.message
    forced = compare([a, b], force=True)
    assert any(m.startswith(problem.split(":")[0]) for m in forced.mismatches)
    same = _copy_with(
        second, tmp_path / "c", {"environment.accelerators": _gpu("NVIDIA H200", 700.0)}
    )
    assert compare([a, same]).mismatches == ()


def test_estimated_energy_has_rows_of_its_own(gpu_study: Path, tmp_path: Path) -> None:
    first, second = _folders(gpu_study)[:2]
    estimate = {"domains": ["cpu:0"], "total_j": 4.0, "j_per_output_token": 0.5,
                "j_per_request": 1.0, "note": "estimated"}  # fmt: skip
    a = _copy_with(first, tmp_path / "a", {"energy.estimated": estimate})
    b = _copy_with(second, tmp_path / "b", {"energy.estimated": {**estimate, "total_j": 8.0}})
    comparison = compare([a, b])
    assert comparison.columns[0].values["estimated_j"] == 4.0
    assert comparison.ratios[1]["estimated_j"] == 2.0
    assert comparison.columns[0].values["energy_j"] != 4.0  # never mixed into the measured row
