"""The HTML report of a study or a run: one self-contained file, inline SVG, no network.

Sections, top to bottom: the summary; the per-config table (mean ± 95 % CI across
cycles, from ``study_result.json``); J/output token and output tokens/s against each
swept parameter; the energy-throughput Pareto front; the power, temperature, clock and
utilisation traces of a chosen run with the warm-up, the window and throttled stretches
shaded; every run; the warnings; the environment; the methodology.

Each section is built by its own module: ``configs`` (the per-config table), ``sweeps``
(charts against swept parameters, the Pareto front), ``traces``, ``sections`` (summary,
runs, warnings, environment, methodology), all from the blocks in ``markup``.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from llenergymeasure.records.atomic import atomic_write_text
from llenergymeasure.report.configs import config_table, configs_of, swept_parameters
from llenergymeasure.report.sections import (
    environment_section,
    methodology_section,
    runs_section,
    summary_section,
    warnings_section,
)
from llenergymeasure.report.serving import serving_section
from llenergymeasure.report.sweeps import pareto_section, sweep_plots
from llenergymeasure.report.traces import traces_section
from llenergymeasure.results.collection import ResultSet, RunResult, load_runs, open_results

__all__ = ["REPORT_FILE", "build_report", "render_report", "write_report"]

REPORT_FILE = "report.html"


def build_report(path: Path) -> str:
    """The report of the study or run at ``path``, as one HTML document."""
    results = open_results(path)
    return render_report(results, load_runs(results, traces=True))


def write_report(path: Path, output: Path | None = None) -> Path:
    """Write the report of ``path`` (default: ``report.html`` in its folder); returns the file."""
    results = open_results(path)
    html = render_report(results, load_runs(results, traces=True))
    target = output or (results.path / REPORT_FILE)
    atomic_write_text(target, html)
    return target


def render_report(results: ResultSet, runs: Sequence[RunResult]) -> str:
    """The report of ``results`` from its runs, read with their traces."""
    configs = configs_of(results, runs)
    swept = swept_parameters([c.params for c in configs])
    sections = [
        summary_section(results, runs),
        config_table(results, configs, swept),
        sweep_plots(configs, swept),
        serving_section(runs),
        pareto_section(configs),
        traces_section(runs),
        runs_section(results, runs),
        warnings_section(runs),
        environment_section(runs),
        methodology_section(results, runs),
    ]
    title = f"llem report · {results.name}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>" + "".join(sections) + f"<script>{_SCRIPT}</script>"
        "</body></html>\n"
    )


# ------------------------------------------------------------------ data


# ------------------------------------------------------------------ sections


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:0 16px 48px;
max-width:1280px;color:#222;line-height:1.4;font-size:15px}
h1{font-size:1.5em;margin:20px 0 8px}h2{font-size:1.2em;margin:28px 0 8px;
border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
table.wide td{white-space:nowrap}
thead th{background:#f3f3f3}table.kv th{background:#f7f7f7;white-space:nowrap}
table.wide{display:block;overflow-x:auto;max-width:100%}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr));gap:12px}
figure{margin:0}svg.plot{width:100%;height:auto;max-width:760px;background:#fff}
.na{color:#888}.n{color:#777;font-size:12px}.note{color:#555;font-size:13px;margin:4px 0}
select{font-size:14px;margin:4px 0 8px}
"""

_SCRIPT = """
(function () {
  var select = document.getElementById("trace-run");
  if (!select) { return; }
  function show() {
    var blocks = document.querySelectorAll("div.trace");
    for (var i = 0; i < blocks.length; i++) { blocks[i].hidden = blocks[i].id !== select.value; }
  }
  select.addEventListener("change", show);
  show();
})();
"""
