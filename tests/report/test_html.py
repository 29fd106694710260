"""The HTML report: sections, plots, numbers from the result files, self-contained."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from gpu_study import THROTTLED_BATCH
from llenergymeasure.report.configs import pareto_front, swept_parameters
from llenergymeasure.report.html import REPORT_FILE, build_report, render_report, write_report
from llenergymeasure.report.traces import MAX_TRACE_RUNS
from llenergymeasure.results.collection import RunResult, load_runs, open_results

SECTIONS = (
    "summary",
    "configs",
    "sweeps",
    "pareto",
    "traces",
    "runs",
    "warnings",
    "environment",
    "methodology",
)


@pytest.fixture(scope="module")
def html(gpu_study: Path) -> str:
    return build_report(gpu_study)


def _trace_block(html: str, run_key: str) -> str:
    """The trace block of the run whose selector option starts with ``run_key``."""
    (value,) = re.findall(rf'<option value="(run-\d+)">{re.escape(run_key)} ', html)
    start = html.index(f'<div class="trace" id="{value}"')
    end = html.find('<div class="trace"', start + 1)
    return html[start : end if end != -1 else html.index("</section>", start)]


def test_every_section_is_there_in_order(html: str) -> None:
    positions = [html.index(f'<section id="{anchor}">') for anchor in SECTIONS]
    assert positions == sorted(positions)
    assert html.startswith("<!DOCTYPE html>")


def test_the_config_table_shows_the_study_result_aggregates(gpu_study: Path, html: str) -> None:
    study = json.loads((gpu_study / "study_result.json").read_text())
    configs = html[html.index('<section id="configs">') : html.index('<section id="sweeps">')]
    for agg in study["aggregates"]:
        tps = agg["output_tokens_per_s"]
        row = configs[configs.index(f"<td>{agg['index']}</td>") :].split("</tr>", 1)[0]
        assert f"(n={tps['n']})" in row
        if tps["ci95_half_width"] is None:  # the mean to about four significant digits
            shown = re.search(r"([\d,.]+) tok/s", row)
            assert shown is not None, row
            assert float(shown.group(1).replace(",", "")) == pytest.approx(tps["mean"], rel=1e-3)
        else:
            assert "±" in row


def test_one_plot_per_swept_parameter_and_metric_and_a_pareto_front(
    gpu_study: Path, html: str
) -> None:
    sweeps = html[html.index('<section id="sweeps">') : html.index('<section id="pareto">')]
    assert sweeps.count('<svg class="plot"') == 2  # J/token and tokens/s vs fake.batch_size
    assert "J per output token vs fake.batch_size" in sweeps
    assert "output tokens/s vs fake.batch_size" in sweeps
    pareto = html[html.index('<section id="pareto">') : html.index('<section id="traces">')]
    assert pareto.count('<svg class="plot"') == 1
    assert "config on the front" in pareto


def test_each_completed_run_has_its_traces_with_window_and_throttling(
    gpu_study: Path, html: str
) -> None:
    runs = load_runs(open_results(gpu_study))
    assert html.count('<div class="trace"') == len(runs)
    assert html.count("<option value=") == len(runs)
    for run in runs:
        block = _trace_block(html, run.entry.key)
        assert block.count('<svg class="plot"') == 4  # power, temperature, SM clock, utilisation
        assert "Power (W)" in block and "Temperature (°C)" in block and "SM clock (MHz)" in block
        assert block.count('class="rule"') == 2 * 4  # window start and end on every plot
        throttled = "<title>throttled</title>" in block
        assert throttled == (run.result.config.batch_size == THROTTLED_BATCH), run.entry.key


def test_failed_runs_are_listed_with_their_error(gpu_study: Path, html: str) -> None:
    failed = [e for e in open_results(gpu_study).entries if e.status == "failed"]
    assert failed
    for entry in failed:
        assert entry.error is not None and entry.error in html


def test_the_report_is_self_contained(html: str) -> None:
    assert "<link" not in html and " src=" not in html
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}


def test_the_report_is_written_next_to_the_results_by_default(
    gpu_study: Path, tmp_path: Path
) -> None:
    chosen = write_report(gpu_study, tmp_path / "r.html")
    assert chosen == tmp_path / "r.html"
    assert chosen.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    folder = open_results(gpu_study).completed[0].folder
    assert folder is not None
    copy = tmp_path / "one"
    copy.mkdir()
    for file in folder.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    assert write_report(copy) == copy / REPORT_FILE
    single = (copy / REPORT_FILE).read_text(encoding="utf-8")
    assert "Nothing was swept" in single and single.count('<div class="trace"') == 1


def test_large_studies_carry_a_bounded_number_of_traces(gpu_study: Path) -> None:
    results = open_results(gpu_study)
    (run,) = load_runs(results, traces=True)[:1]
    many = [
        dataclasses.replace(run, entry=dataclasses.replace(run.entry, index=i))
        for i in range(1, MAX_TRACE_RUNS + 6)
    ]
    html = render_report(results, many)
    assert html.count('<div class="trace"') == MAX_TRACE_RUNS
    assert f"Traces of {MAX_TRACE_RUNS} of {len(many)} runs" in html


def test_swept_parameters_are_the_fields_that_vary() -> None:
    params = [
        {"engine": "fake", "fake.batch_size": 1, "task.model": "m", "vllm.dtype": None},
        {"engine": "fake", "fake.batch_size": 4, "task.model": "m", "vllm.dtype": None},
        {"engine": "vllm", "fake.batch_size": None, "task.model": "m", "vllm.dtype": "float16"},
    ]
    assert swept_parameters(params) == ["engine", "fake.batch_size"]


def test_the_pareto_front_keeps_only_undominated_points() -> None:
    # (tokens/s, J/token): 1 beats 0 on both; 2 is fastest; 3 is cheapest; 4 ties 2's speed
    points = [(100.0, 0.5), (150.0, 0.4), (300.0, 0.45), (120.0, 0.1), (300.0, 0.6)]
    assert pareto_front(points) == [3, 1, 2]
    assert pareto_front([(1.0, 1.0)]) == [0]
    assert pareto_front([]) == []


def test_a_swept_text_field_is_plotted_on_a_category_axis_per_other_value(
    gpu_study: Path,
) -> None:
    results = open_results(gpu_study)
    runs = load_runs(results, traces=True)
    orders = ("grouped", "shuffled")
    changed = []
    for i, run in enumerate(runs):
        order = orders[i % 2]
        config = run.result.config
        dataset = config.task.dataset.model_copy(update={"order": order})
        config = config.model_copy(
            update={"task": config.task.model_copy(update={"dataset": dataset})}
        )
        entry = dataclasses.replace(run.entry, config_hash=f"{run.entry.config_hash}-{order}")
        changed.append(RunResult(entry, run.result.model_copy(update={"config": config})))
    html = render_report(results, changed)
    sweeps = html[html.index('<section id="sweeps">') : html.index('<section id="pareto">')]
    assert "J per output token vs task.dataset.order" in sweeps
    assert sweeps.count('<svg class="plot"') == 4  # two swept fields x two metrics
    for order in orders:
        assert f">{order}</text>" in sweeps  # category tick labels
    sizes = {run.result.config.batch_size for run in runs}
    for size in sizes:  # one line per value of the other swept field, named in the legend
        assert f"fake.batch_size={size}</text>" in sweeps
