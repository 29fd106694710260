"""The report in a real browser: headless Chromium renders it without a console error, and
every plot of every run has drawn. A screenshot is kept under ``artifacts/`` at the repo root.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them).
Without them the test is skipped locally, but fails in CI (``CI`` set): CI must not pass
by skipping the one check that the report really renders.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.report.html import write_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

# For every <svg class="plot"> in view: how many data marks it holds and how large they drew.
_DRAWN = """
return Array.from(document.querySelectorAll('svg.plot')).map(function (svg) {
  var marks = svg.querySelectorAll('.mark');
  var area = 0;
  marks.forEach(function (m) { var b = m.getBBox(); area += b.width + b.height; });
  var box = svg.getBoundingClientRect();
  return {title: svg.getAttribute('aria-label'), visible: box.width > 0 && box.height > 0,
          marks: marks.length, drawn: area};
});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        message = (
            f"headless Chromium is needed: {CHROMIUM} and {CHROMEDRIVER} "
            "(apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1366,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium-manager is never asked to download anything.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_report_renders_without_errors_and_every_plot_draws(
    gpu_study: Path, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.support.ui import Select

    report = write_report(gpu_study, tmp_path / "report.html")
    browser.get(report.as_uri())
    n_plots = browser.execute_script("return document.querySelectorAll('svg.plot').length")
    select = Select(browser.find_element("id", "trace-run"))
    n_runs = len(select.options)
    assert n_runs > 1 and n_plots > n_runs
    checked: set[str] = set()
    for i in range(n_runs):
        select.select_by_index(i)
        shown = [p for p in browser.execute_script(_DRAWN) if p["visible"]]
        # each run's own traces are the only ones shown besides the study-wide plots
        assert sum("·" in p["title"] for p in shown) == 4, i
        for plot in shown:
            assert plot["marks"] > 0 and plot["drawn"] > 0, plot
            checked.add(plot["title"])
    assert len(checked) == n_plots  # every plot was seen drawn at some point

    select.select_by_index(0)
    browser.execute_script("window.scrollTo(0, 0)")
    ARTIFACTS.mkdir(exist_ok=True)
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1366, min(height + 40, 16_000))
    screenshot = ARTIFACTS / "report.png"
    assert browser.save_screenshot(str(screenshot))
    print(f"report screenshot: {screenshot}")
    assert screenshot.stat().st_size > 10_000

    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
