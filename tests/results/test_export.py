"""Export: one flat row per completed run, equal to the result files, in CSV, Parquet, pandas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

import llenergymeasure.results
from llenergymeasure.errors import ResultError
from llenergymeasure.results.collection import open_results
from llenergymeasure.results.export import export_table, write_export


def _completed(study: Path) -> dict[str, dict[str, Any]]:
    """Each completed run's folder name -> its result.json, from the manifest."""
    manifest = json.loads((study / "manifest.json").read_text())
    return {
        e["result"]: json.loads((study / e["result"] / "result.json").read_text())
        for e in manifest["entries"]
        if e["status"] == "completed"
    }


def _expected(result: dict[str, Any]) -> dict[str, Any]:
    """Columns whose values are read straight from result.json."""
    energy = result["energy"]
    expected = {
        "experiment_id": result["experiment_id"],
        "config_hash": result["measurement_config_hash"],
        "engine": result["engine"],
        "model": result["model"]["name"],
        "methodology_version": result["methodology"]["version"],
        "window_s": result["window"]["duration_s"],
        "config.fake.batch_size": result["config"]["fake"]["batch_size"],
        "config.task.max_output_tokens": result["config"]["task"]["max_output_tokens"],
        "tokens.n_output_tokens": result["tokens"]["n_output_tokens"],
        "throughput.output_tokens_per_s": result["throughput"]["output_tokens_per_s"],
        "latency.e2e.p50_ms": result["latency"]["e2e"]["p50_ms"],
        "latency.ttft.p90_ms": result["latency"]["ttft"]["p90_ms"],
        "energy.total_j": energy["total_j"],
        "energy.j_per_output_token": energy["j_per_output_token"],
        "energy.method": energy["method"],
        "power.mean_w": result["power"]["mean_w"],
        "timings.total_s": result["timings"]["total_s"],
        "n_warnings": len(result["warnings"]),
        "warnings": "; ".join(w["code"] for w in result["warnings"]),
    }
    for domain in energy["domains"]:
        expected[f"energy.{domain['domain']}.energy_j"] = domain["energy_j"]
        expected[f"energy.{domain['domain']}.method"] = domain["method"]
    for thermal in result["thermal"]:
        expected[f"thermal.{thermal['device']}.throttled_s"] = thermal["throttled_s"]
    return expected


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_every_completed_run_is_exported_once_with_the_numbers_of_its_files(
    gpu_study: Path, tmp_path: Path, fmt: str
) -> None:
    target = tmp_path / f"out.{fmt}"
    n = write_export(gpu_study, target, fmt)  # type: ignore[arg-type]
    if fmt == "csv":
        # CSV carries no types: read it back with the export's own column types
        types = {f.name: f.type for f in export_table(open_results(gpu_study)).schema}
        options = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True)
        table = pa_csv.read_csv(target, convert_options=options)
    else:
        table = pq.read_table(target)
    rows = table.to_pylist()
    completed = _completed(gpu_study)
    assert n == len(rows) == len(completed)
    assert sorted(row["run"] for row in rows) == sorted(completed)  # each once, no failed run
    for row in rows:
        result = completed[row["run"]]
        for column, value in _expected(result).items():
            assert row[column] == value, (row["run"], column)


def test_config_columns_are_dotted_and_ordered_before_the_metrics(gpu_study: Path) -> None:
    frame = llenergymeasure.results.load(gpu_study)
    columns = list(frame.columns)
    assert columns[:2] == ["study", "run"]
    assert columns[-2:] == ["n_warnings", "warnings"]
    first_config = min(i for i, c in enumerate(columns) if c.startswith("config."))
    first_metric = columns.index("tokens.n_prompts")
    assert first_config < first_metric
    assert not [c for c in columns if c.startswith("config.") and columns.index(c) > first_metric]


def test_load_gives_the_same_table_as_pandas(gpu_study: Path, tmp_path: Path) -> None:
    frame = llenergymeasure.results.load(str(gpu_study))
    write_export(gpu_study, tmp_path / "out.parquet", "parquet")
    on_disk = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert list(frame.columns) == list(on_disk.columns)
    assert frame.equals(on_disk)
    assert set(frame["run"]) == set(_completed(gpu_study))


def test_a_single_experiment_folder_exports_one_row(gpu_study: Path) -> None:
    folder = open_results(gpu_study).completed[0].folder
    assert folder is not None
    frame = llenergymeasure.results.load(folder)
    assert list(frame["run"]) == [folder.name]


def test_load_without_pandas_names_the_extra_to_install(
    gpu_study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError
    with pytest.raises(ResultError) as caught:
        llenergymeasure.results.load(gpu_study)
    assert "pandas" in caught.value.message
    assert caught.value.hint == "pip install 'llenergymeasure[pandas]'"


def test_importing_the_results_package_does_not_import_pandas(tmp_path: Path) -> None:
    code = (
        "import sys, llenergymeasure.results as r; print('pandas' in sys.modules, callable(r.load))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]


def test_an_unknown_format_is_refused(gpu_study: Path, tmp_path: Path) -> None:
    with pytest.raises(ResultError, match="unknown export format 'xlsx'"):
        write_export(gpu_study, tmp_path / "out.xlsx", "xlsx")  # type: ignore[arg-type]
    assert not (tmp_path / "out.xlsx").exists()
