"""Serving runs in studies, the report, compare and export (against a fake OpenAI server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llenergymeasure import run_experiment
from llenergymeasure.cli.app import main
from llenergymeasure.errors import ResultError
from llenergymeasure.report.serving import ServingPoint, saturation_rate
from llenergymeasure.results.collection import open_results
from llenergymeasure.results.compare import compare
from llenergymeasure.results.export import export_table
from llenergymeasure.testing.fake_openai_server import FakeOpenAIServer

SLO = {"ttft_ms": 200, "tpot_ms": 50}


@pytest.fixture(scope="module")
def serving_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study of two arrival rates against one fake server, with its report."""
    root = tmp_path_factory.mktemp("serving-study")
    study = {
        "study_name": "rates",
        "mode": "serving",
        "task": {"dataset": {"n_prompts": 4}, "max_output_tokens": 8},
        "serving": {"duration_s": 2, "slo": SLO},
        "measurement": {"warmup": {"n_warmup": 1}, "baseline": {"enabled": False}},
        "sweep": {"serving.arrival.rate": [4, 8]},
        "study_execution": {"n_cycles": 1, "experiment_order": "sequential"},
    }
    with FakeOpenAIServer(ttft_ms=20, itl_ms=10, n_tokens=8) as server:
        study["serving"]["endpoint"] = server.url  # type: ignore[index]
        path = root / "study.yaml"
        path.write_text(yaml.safe_dump(study), encoding="utf-8")
        code = main(["run", str(path), "-o", str(root / "out"), "--no-gaps", "--report", "-q"])
    assert code == 0
    [folder] = list((root / "out").glob("rates_*"))
    return folder


def test_a_rate_sweep_aggregates_j_per_request_and_goodput(serving_study: Path) -> None:
    summary = json.loads((serving_study / "study_result.json").read_text())
    assert summary["summary"]["n_completed"] == 2
    for aggregate in summary["aggregates"]:
        assert aggregate["goodput_per_s"]["mean"] > 0
        assert aggregate["j_per_request"] is not None
    # nothing is measured on this host: the figures per request are the estimate, labelled so
    results = sorted(serving_study.glob("*/result.json"))
    assert len(results) == 2
    for result_file in results:
        serving = json.loads(result_file.read_text())["serving"]
        assert serving["energy_method"] == "estimated" and serving["j_per_request"] > 0


def test_the_report_draws_the_energy_latency_curve_and_goodput(serving_study: Path) -> None:
    html = (serving_study / "report.html").read_text(encoding="utf-8")
    assert 'id="serving"' in html
    assert "Energy per request vs p90 TTFT" in html
    assert "Goodput and throughput vs offered rate" in html
    assert "TTFT SLO 200 ms" in html  # the SLO is drawn
    assert "Saturation point" in html


def test_export_has_the_serving_columns(serving_study: Path) -> None:
    table = export_table(open_results(serving_study))
    names = set(table.column_names)
    for column in (
        "mode",
        "serving.arrival.requested_rate_per_s",
        "serving.arrival.achieved_rate_per_s",
        "serving.window.duration_s",
        "serving.goodput.goodput_per_s",
        "serving.latency.ttft.p90_ms",
        "serving.j_per_request",
    ):
        assert column in names
    assert "serving.requests" not in names
    assert sorted(table.column("serving.arrival.requested_rate_per_s").to_pylist()) == [4, 8]


def test_two_serving_configs_compare_and_offline_against_serving_is_refused(
    serving_study: Path, tmp_path: Path
) -> None:
    comparison = compare([serving_study])
    assert len(comparison.columns) == 2
    assert comparison.columns[0].values["goodput_per_s"] is not None
    offline = run_experiment(
        {"engine": "fake", "task": {"dataset": {"n_prompts": 2}, "max_output_tokens": 4}},
        output_dir=tmp_path,
    )
    assert offline.mode == "offline"
    [run] = list(tmp_path.glob("*/001_c1_*"))
    for force in (False, True):
        with pytest.raises(ResultError, match="offline and serving"):
            compare([serving_study, run], force=force)


def _point(offered: float, achieved: float, arrived: float | None = None) -> ServingPoint:
    return ServingPoint("c", 1, offered, arrived, achieved, None, None, None, None, None)


def test_the_saturation_point_is_the_last_rate_the_throughput_followed() -> None:
    points = [_point(1, 1.0), _point(2, 1.97), _point(4, 3.0), _point(8, 3.1)]
    assert saturation_rate(points) == 2
    assert saturation_rate([_point(1, 0.5)]) is None
    assert saturation_rate([_point(1, 1.0), _point(2, 2.0)]) == 2
    # a Poisson window that happened to receive fewer arrivals than the rate is no saturation
    assert saturation_rate([_point(2, 0.7, arrived=0.7), _point(4, 4.1, arrived=4.0)]) == 4


def test_the_study_summary_table_shows_the_serving_headline(serving_study: Path) -> None:
    from rich.console import Console

    from llenergymeasure.cli.study_tables import summary_table
    from llenergymeasure.study.models import StudyResult

    result = StudyResult.model_validate_json((serving_study / "study_result.json").read_text())
    console = Console(record=True, width=200)
    console.print(summary_table(result))
    text = console.export_text()
    assert "J/request (serving)" in text and "goodput req/s (serving)" in text
