"""Terminal tables: names cut in the middle to fit, and the live table of a study."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from llenergymeasure.cli.fit import add_rows, middle
from llenergymeasure.cli.live import RichStudyReporter
from llenergymeasure.config.study import expand_study
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.manifest import ManifestEntry
from llenergymeasure.study.models import HeadlineMetrics

LONG = "transformers bs=64 dtype=bfloat16 attn=sdpa max_output_tokens=1024 source=long.jsonl"


@pytest.mark.parametrize(
    ("width", "cut"),
    [(100, LONG), (21, "transforme…long.jsonl"), (2, "t…"), (1, "…")],
)
def test_a_name_is_cut_in_the_middle(width: int, cut: str) -> None:
    assert middle(LONG, width) == cut
    assert len(cut) <= width


def render(renderable: object, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


def table(width: int | None) -> Table:
    result = Table()
    for column in ("#", "config", "J/token"):
        result.add_column(column)
    add_rows(result, [["1", LONG, "0.0123"], ["2", "short", "n/a"]], label=1, width=width)
    return result


def test_rows_fit_the_width_with_the_label_cut_and_whole_without_one() -> None:
    lines = render(table(80), 80)
    assert all(len(line) <= 80 for line in lines)
    assert LONG not in "\n".join(lines) and "…" in "\n".join(lines)
    assert any(line.count("│") == 4 and "short" in line for line in lines)  # one line a row
    assert LONG in "\n".join(render(table(None), 400))


def plan(tmp_path: Path):  # type: ignore[no-untyped-def]
    study = {
        "engine": "fake",
        "sweep": {"fake.batch_size": [1, 2]},
        "study_execution": {"n_cycles": 2},
    }
    return expand_study(study, base_dir=tmp_path, name="live")


def test_the_live_table_shows_each_runs_phase_progress_countdown_and_alert(
    tmp_path: Path,
) -> None:
    console = Console(width=80, record=True, color_system=None, force_terminal=False)
    reporter = RichStudyReporter(console, plan(tmp_path))
    reporter.run_started("fake bs=1", 1, 1)
    reporter.progress(1, 1, RunEvent("phase", "measuring"))
    reporter.progress(1, 1, RunEvent("progress", "measuring", done=3, total=8))
    reporter.run_started("fake bs=2", 2, 1)
    reporter.progress(2, 1, RunEvent("phase", "warm-up"))
    reporter.progress(2, 1, RunEvent("wait", "thermal floor", seconds=60))
    reporter.progress(2, 1, RunEvent("alert", "no news from its Ray worker for 6 s"))
    text = "\n".join(render(reporter, 80))
    assert "running · measuring 3/8" in text
    flat = " ".join(text.replace("│", " ").split())  # cells wrap within their column
    assert "running · warm-up · thermal" in flat and "floor 60 s left" in flat
    assert "⚠ no news from its Ray" in flat
    metrics = HeadlineMetrics(
        output_tokens_per_s=10.0,
        j_per_output_token=0.5,
        energy_j=12.5,
        energy_method="counter",
        window_s=1.0,
    )
    reporter.run_finished(
        ManifestEntry(
            index=1,
            label="fake bs=1",
            config_hash="a" * 16,
            cycle=1,
            status="completed",
            duration_s=4.0,
            metrics=metrics,
        )
    )
    reporter.waiting(30, "thermal gap between experiments")
    lines = render(reporter, 80)
    text = "\n".join(lines)
    assert all(len(line) <= 80 for line in lines)
    assert "1 of 4 runs completed; energy measured so far 12.5 J (1 runs)" in text
    assert "thermal gap between experiments:" in text and "(Enter skips)" in text
    # Not on a terminal, the same events were lines for the log.
    logged = console.export_text()
    assert "run 1/c1: measuring" in logged and "run 1/c1 fake bs=1: completed" in logged


def test_a_running_row_shows_its_windows_tokens_and_labelled_energy_so_far(
    tmp_path: Path,
) -> None:
    console = Console(width=80, record=True, color_system=None, force_terminal=False)
    reporter = RichStudyReporter(console, plan(tmp_path))
    reporter.run_started("fake bs=1", 1, 1)
    reporter.progress(1, 1, RunEvent("phase", "measuring"))
    reporter.progress(1, 1, RunEvent("progress", "measuring", done=2, total=8, n_output_tokens=64))
    flat = " ".join("\n".join(render(reporter, 80)).replace("│", " ").split())
    assert "measuring 2/8" in flat and "64 tokens" in flat
    assert "so far" not in flat  # energy not readable: not shown, never 0 J
    reporter.progress(
        1,
        1,
        RunEvent(
            "progress",
            "measuring",
            done=4,
            total=8,
            n_output_tokens=1280,
            energy_j=85.25,
            energy_method="counter",
        ),
    )
    lines = render(reporter, 80)
    flat = " ".join("\n".join(lines).replace("│", " ").split())
    assert all(len(line) <= 80 for line in lines)
    assert "1,280 tokens ·" in flat and "85.2 J so far" in flat and "(counter)" in flat
    reporter.progress(1, 1, RunEvent("phase", "writing results"))
    flat = " ".join("\n".join(render(reporter, 80)).replace("│", " ").split())
    assert "tokens" not in flat and "so far (counter)" not in flat
