"""``llem run study.yaml``: the plan, a live table while it runs, a summary at the end."""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from llenergymeasure.cli.fit import output_console, width_of
from llenergymeasure.cli.live import RichStudyReporter, SkippableSleep
from llenergymeasure.cli.study_tables import plan_json, plan_table, summary_table
from llenergymeasure.config.errors import printable
from llenergymeasure.config.execution import MAX_DURATION_S
from llenergymeasure.config.loading import UserConfig
from llenergymeasure.config.study import load_study
from llenergymeasure.errors import ConfigError, StudyError
from llenergymeasure.report.html import write_report
from llenergymeasure.study.estimate import estimate_duration
from llenergymeasure.study.manifest import MANIFEST_FILE
from llenergymeasure.study.run import StudyOutcome, run_study
from llenergymeasure.system.gpus import list_gpus

__all__ = ["StudyOptions", "find_resume_dir", "parse_duration_s", "run_study_file"]

_UNITS_S = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_HINT = "e.g. --timeout 30s, 45m, 8h or 1h30m (a bare number is seconds)"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(min|d|h|m|s)")


@dataclass(frozen=True)
class StudyOptions:
    """How `llem run` runs a study file: where, resumed or not, planned only, and output."""

    root: Path
    resume: str | None = None
    dry_run: bool = False
    report: bool = False
    wide: bool = False
    as_json: bool = False


def parse_duration_s(text: str) -> float:
    """``90``, ``30s``, ``45m``, ``2h``, ``1h30m``, ``1d`` as seconds; ConfigError otherwise."""
    spoken = text.strip().lower()
    try:
        seconds = float(spoken)  # a bare number is seconds
    except ValueError:
        parts = _DURATION.findall(spoken)
        left = _DURATION.sub("", spoken).strip()
        seconds = math.fsum(float(n) * _UNITS_S[u] for n, u in parts) if parts and not left else 0
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(
            f"--timeout: cannot read `{printable(text)}` as a duration",
            hint=_DURATION_HINT,
        )
    if seconds > MAX_DURATION_S:
        raise ConfigError(
            f"--timeout: `{printable(text)}` is longer than the longest budget, "
            f"{MAX_DURATION_S / 86_400:g} days",
            hint=_DURATION_HINT,
        )
    return seconds


def find_resume_dir(results_root: Path, name: str) -> Path:
    """The newest study folder of this study name under ``results_root``."""
    candidates = sorted(
        (p for p in results_root.glob(f"{name}_*") if (p / MANIFEST_FILE).is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    if not candidates:
        raise StudyError(
            f"no earlier study `{name}` to resume under {results_root}",
            hint="give the study folder: --resume DIR",
        )
    return candidates[-1]


def run_study_file(
    path: Path,
    overrides: dict[str, Any],
    *,
    user: UserConfig,
    options: StudyOptions,
    out: Console,
    err: Console,
) -> int:
    """Plan, then run (or resume) a study; returns the exit code (0, 1, 124 or 130)."""
    root, resume = options.root, options.resume
    plan = load_study(path, overrides, user=user)
    n_remote = sum(config.task.trust_remote_code for config in plan.configs)
    if n_remote:
        err.print(
            f"[yellow]note:[/] trust_remote_code is true in {n_remote} of {len(plan.configs)} "
            "configs: those model folders' own code will run"
        )
    # Only the default thermal gaps depend on it; no torch in the parent. On a Ray cluster
    # the runs' GPUs count, not this machine's: run_study asks the cluster once joined.
    on_ray = plan.execution.executor == "ray"
    on_gpu = plan.execution.gpus_per_run != 0 if on_ray else bool(list_gpus()[0])
    tables = output_console(wide=options.wide) if options.wide else out
    width = width_of(tables, options.wide)
    if options.dry_run:
        estimate = estimate_duration(plan, on_gpu=on_gpu, results_root=root)
        if options.as_json:
            sys.stdout.write(json.dumps(plan_json(plan, estimate), indent=2) + "\n")
        else:
            tables.print(plan_table(plan, estimate, width=width))
        return 0
    resume_dir = None
    if resume is not None:
        resume_dir = find_resume_dir(root, plan.name) if resume == "latest" else Path(resume)
    with RichStudyReporter(err, plan, width=None if options.wide else 0) as reporter:
        outcome = run_study(
            plan,
            results_root=root,
            resume_dir=resume_dir,
            reporter=reporter,
            sleep=SkippableSleep(),
            on_gpu=None if on_ray else on_gpu,
        )
    _print_outcome(outcome, path, options, tables, err)
    return outcome.exit_code


def _print_outcome(
    outcome: StudyOutcome, path: Path, options: StudyOptions, out: Console, err: Console
) -> None:
    if options.as_json:
        sys.stdout.write(outcome.result.model_dump_json(indent=2) + "\n")
    else:
        out.print(summary_table(outcome.result, width=width_of(out, options.wide)))
    err.print(f"study written to {outcome.study_dir}")
    if options.report:
        err.print(f"report written to {write_report(outcome.study_dir)}")
    resume = f"llem run {path} --resume {outcome.study_dir}"
    if outcome.status == "interrupted":
        err.print(f"interrupted; finish it with: {resume}")
    elif outcome.status == "timed_out":
        err.print(f"{outcome.manifest.stop_reason}\ncontinue it with: {resume}")
    elif outcome.manifest.stop_reason:
        err.print(f"stopped early: {outcome.manifest.stop_reason}")
