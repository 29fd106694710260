"""`llem results list|show|compare|export|report` on a real fake-engine study and a single run,
both made by the real CLI with `--report`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llenergymeasure.cli.app import main

STUDY = """\
study_name: tiny
engine: fake
task: {dataset: {n_prompts: 2}, max_output_tokens: 2}
fake: {token_latency_ms: 1}
measurement: {warmup: {enabled: false}, energy_sampler: estimate}
sweep:
  fake.batch_size: [1, 2]
study_execution: {n_cycles: 2, experiment_order: interleave}
"""


def _llem(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    user = cwd / "empty-user-config.yaml"
    user.write_text("{}\n", encoding="utf-8")
    env = {**os.environ, "LLEM_USER_CONFIG": str(user)}
    return subprocess.run(
        [sys.executable, "-m", "llenergymeasure", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A study, then a single run, under one results folder, each with its report."""
    cwd = tmp_path_factory.mktemp("cli-results")
    (cwd / "study.yaml").write_text(STUDY, encoding="utf-8")
    study = _llem("run", "study.yaml", "--report", "--quiet", cwd=cwd)
    assert study.returncode == 0, study.stderr
    single = _llem(
        "run",
        "--engine",
        "fake",
        "-n",
        "2",
        "--max-output-tokens",
        "2",
        "--quiet",
        "--report",
        cwd=cwd,
    )
    assert single.returncode == 0, single.stderr
    (study_dir,) = (p.parent for p in (cwd / "results").glob("*/manifest.json"))
    (run_dir,) = (p for p in (cwd / "results").iterdir() if p != study_dir)
    return {"cwd": cwd, "root": cwd / "results", "study": study_dir, "run": run_dir}


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")  # rich: no folded names in the captured tables


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error(err: str) -> str:
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    return errors[0]


def test_run_report_writes_the_report_into_each_results_folder(made: dict[str, Path]) -> None:
    for folder in (made["study"], made["run"]):
        html = (folder / "report.html").read_text(encoding="utf-8")
        assert html.startswith("<!DOCTYPE html>") and '<svg class="plot"' in html


def test_list_shows_every_study_and_run_newest_first(
    made: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "results", "list", str(made["root"]))
    assert code == 0
    assert out.index(made["run"].name) < out.index(made["study"].name)
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if made["study"].name in line)
    assert "study" in lines[at] and "4/4 ok" in lines[at]
    assert "completed" in lines[at + 1]
    assert "smollm2-135m · fake" in lines[at + 1]  # date · models · engines below the name
    at = next(i for i, line in enumerate(lines) if made["run"].name in line)
    assert "1 ok" in lines[at] and "smollm2-135m" in lines[at + 1]


def test_list_defaults_to_results_in_the_current_folder(
    made: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(made["cwd"])
    code, out, _ = _run(capsys, "results", "list")
    assert code == 0 and made["study"].name in out


def test_list_of_a_missing_folder_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "results", "list", str(tmp_path / "nowhere"))
    assert code == 1
    assert "no results folder" in _one_error(err)


def test_show_a_study_prints_its_summary_runs_warnings_and_environment(
    made: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "results", "show", str(made["study"]))
    assert code == 0
    assert "4/4 runs completed" in out
    manifest = json.loads((made["study"] / "manifest.json").read_text())
    for entry in manifest["entries"]:
        assert f"{entry['index']}/c{entry['cycle']}" in out
    assert "environment" in out and "CPython" in out
    assert "short_window" in out  # the warnings, with a remedy


def test_status_of_a_finished_study_counts_its_runs_energy_and_names_no_eta(
    made: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "results", "status", str(made["study"]))
    assert code == 0
    assert "study tiny: not running; status completed" in out
    assert "4 of 4 runs completed, 0 running, 0 pending, 0 failed, 0 interrupted" in out
    # The estimate sampler measures nothing: its figures stand apart, never as measured.
    assert "energy measured so far" not in out
    assert "ETA" not in out  # nothing left to do
    text = out
    code, out, _ = _run(capsys, "status", str(made["study"]), "--json")
    data = json.loads(out)
    assert code == 0 and data["n_completed"] == 4 and data["state"] == "stopped"
    done = data["completed"]  # every completed run, with its folder and figures
    assert sorted((r["index"], r["cycle"]) for r in done) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for run in done:
        assert (made["study"] / run["result"] / "result.json").is_file()
        assert run["duration_s"] > 0 and run["output_tokens_per_s"] > 0
        assert run["energy_method"] in ("estimated", None)
    assert data["energy_so_far_j"] is None and data["n_energy_runs"] == 0
    if data["estimated_so_far_j"] is not None:
        assert "energy estimated so far" in text and data["estimated_so_far_j"] > 0


def test_status_of_a_folder_that_is_no_study_is_one_error_line(
    made: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "results", "status", str(made["run"]))
    assert code == 1
    assert "is not a study folder" in _one_error(err)


def test_show_a_single_run_prints_the_run_table(
    made: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "results", "show", str(made["run"]))
    assert code == 0
    result = json.loads(next(made["run"].glob("*/result.json")).read_text())
    assert f"llem · {result['experiment_id']}" in out
    assert "output tokens/s" in out and "environment" in out


def test_compare_puts_the_configs_side_by_side_with_ratios(
    made: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "results", "compare", str(made["study"]))
    assert code == 0
    assert "tiny: fake bs=1" in out and "tiny: fake bs=2" in out
    assert "↑ output tokens/s" in out and "(×" in out


def test_compare_refuses_a_mismatched_methodology_in_one_error_line(
    made: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = next(p.parent for p in made["study"].glob("*/result.json"))
    copy = shutil.copytree(original, tmp_path / original.name)
    data = json.loads((copy / "result.json").read_text())
    data["methodology"]["version"] = "0.1"
    (copy / "result.json").write_text(json.dumps(data), encoding="utf-8")
    code, out, err = _run(capsys, "results", "compare", str(original), str(copy))
    assert code == 1 and out == ""
    line = _one_error(err)
    assert "methodology versions differ" in line and "0.1" in line
    assert "--force" in err  # the hint says how to look anyway
    code, out, err = _run(capsys, "results", "compare", "--force", str(original), str(copy))
    assert code == 0 and "NOT COMPARABLE" in err and "(×" in out


def test_export_writes_csv_and_parquet_with_one_row_per_completed_run(
    made: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "results", "export", str(made["study"]))
    assert code == 0
    csv_file = made["study"] / "tiny.csv"
    assert f"4 runs exported to {csv_file}" in err
    assert len(csv_file.read_text(encoding="utf-8").splitlines()) == 1 + 4
    code, _, _ = _run(
        capsys, "results", "export", str(made["study"]), "-o", str(tmp_path / "a.parquet")
    )
    assert code == 0
    table = pq.read_table(tmp_path / "a.parquet")
    assert table.num_rows == 4 and "config.fake.batch_size" in table.column_names
    code, out, _ = _run(capsys, "results", "export", str(made["study"]), "-o", "-")
    assert code == 0 and out.splitlines()[0].startswith('"study","run"')


def test_export_refuses_an_unknown_format_as_a_usage_error(
    made: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "results", "export", str(made["study"]), "--format", "xlsx")
    assert code == 2
    assert "unknown export format 'xlsx'" in _one_error(err)


def test_report_writes_where_asked(
    made: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "r.html"
    code, _, err = _run(capsys, "results", "report", str(made["study"]), "-o", str(target))
    assert code == 0 and f"report written to {target}" in err
    assert target.read_text(encoding="utf-8").count('<div class="trace"') == 4


def test_results_alone_prints_its_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "results")
    assert code == 0
    for command in ("list", "show", "compare", "export", "report"):
        assert command in out


def test_results_help_imports_neither_pandas_nor_pyarrow(tmp_path: Path) -> None:
    code = (
        "import contextlib, io, sys\n"
        "from llenergymeasure.cli.app import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['results', '--help']) == 0\n"
        "print(sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_force_help_names_what_it_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "results", "compare", "--help")
    assert code == 0
    help_text = " ".join(out.split())
    for what in ("methodology versions", "GPU models", "GPU power limits", "energy methods"):
        assert what in help_text
