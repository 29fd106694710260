"""A study's tables: the plan before it runs, the summary after, the engine parity.

Each takes ``width``: the columns the table must fit (config labels are cut in the
middle), or None to show them whole (``--wide``).
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table

from llenergymeasure.cli.fit import Cell, add_rows
from llenergymeasure.config.study import StudyPlan
from llenergymeasure.study.estimate import DurationEstimate
from llenergymeasure.study.models import Aggregate, ConfigAggregate, StudyResult
from llenergymeasure.study.parity import StudyParity

__all__ = ["MAX_PLAN_ROWS", "parity_table", "plan_json", "plan_table", "summary_table"]

# A terminal table of thousands of rows is unreadable and slow to draw.
MAX_PLAN_ROWS = 50


def plan_table(plan: StudyPlan, estimate: DurationEstimate, *, width: int | None = None) -> Table:
    """Each unique config, the run count and order, skips, and the estimated duration."""
    runs = plan.runs()
    table = Table(
        title=(
            f"study {plan.name}: {len(plan.configs)} configs × {plan.execution.n_cycles} cycles "
            f"= {len(runs)} runs, order {plan.execution.experiment_order} (nothing has run)"
        ),
        title_justify="left",
    )
    for column in ("#", "config", "hash", "prompts × max tokens"):
        table.add_column(column, justify="right" if column == "#" else "left")
    rows: list[list[Cell]] = []
    shown = list(zip(plan.configs, plan.labels, strict=True))[:MAX_PLAN_ROWS]
    for i, (config, label) in enumerate(shown, 1):
        task = config.task
        rows.append(
            [
                str(i),
                label,
                plan.config_hashes[i - 1][:8],
                f"{task.dataset.n_prompts} × {task.max_output_tokens}",
            ]
        )
    if len(plan.configs) > MAX_PLAN_ROWS:
        rows.append(["…", f"and {len(plan.configs) - MAX_PLAN_ROWS:,} more configs", "", ""])
    rows += [["-", f"skipped: {s.label}", "", s.reason] for s in plan.skipped]
    add_rows(table, rows, label=1, width=width)
    order = ", ".join(f"{r.config_index + 1}/c{r.cycle}" for r in runs[:24])
    table.caption = escape(
        f"run order: {order}{' …' if len(runs) > 24 else ''}\n"
        f"design hash {plan.design_hash}\n{_estimate_text(estimate)}{_executor_text(plan)}"
    )
    return table


def plan_json(plan: StudyPlan, estimate: DurationEstimate) -> dict[str, Any]:
    """The plan as ``llem run study.yaml --dry-run --json`` prints it: every config whole,
    the runs in order, what was skipped and why, and the duration estimate."""
    return {
        "study_name": plan.name,
        "design_hash": plan.design_hash,
        "execution": plan.execution.model_dump(mode="json"),
        "configs": [
            {"index": i, "label": label, "config_hash": config_hash, "config": dumped}
            for i, (label, config_hash, dumped) in enumerate(
                zip(
                    plan.labels,
                    plan.config_hashes,
                    (c.model_dump(mode="json") for c in plan.configs),
                    strict=True,
                ),
                1,
            )
        ],
        "runs": [{"index": r.config_index + 1, "cycle": r.cycle} for r in plan.runs()],
        "skipped": [{"label": s.label, "reason": s.reason} for s in plan.skipped],
        "estimate": {
            "total_s": estimate.total_s,
            "lower_bound": estimate.n_untimed_runs > 0,
            "gaps_s": estimate.gaps_s,
            "timed_s": estimate.timed_s,
            "n_timed_runs": estimate.n_timed_runs,
            "fixed_s": estimate.fixed_s,
            "n_untimed_runs": estimate.n_untimed_runs,
        },
    }


def _executor_text(plan: StudyPlan) -> str:
    execution = plan.execution
    if execution.executor != "ray":
        return ""
    where = execution.address or "a Ray started here"
    return (
        f"\nexecutor ray ({where}): runs go one per GPU side by side, so the study takes "
        "about the estimate divided by the GPUs free"
    )


def _estimate_text(e: DurationEstimate) -> str:
    parts = [f"{e.gaps_s:,.0f} s of thermal gaps"]
    if e.n_timed_runs:
        parts.append(f"{e.timed_s:,.0f} s for {e.n_timed_runs} runs timed from earlier results")
    if e.n_untimed_runs:
        fixed = f" ({e.fixed_s:,.0f} s of baselines and thermal floors known)" if e.fixed_s else ""
        parts.append(f"{e.n_untimed_runs} runs never timed{fixed}")
    bound = "at least " if e.n_untimed_runs else "about "
    return f"estimated duration: {bound}{e.total_s:,.0f} s = " + " + ".join(parts)


def summary_table(result: StudyResult, *, width: int | None = None) -> RenderableType:
    """Per unique config across cycles: mean, std and 95 % CI of J/token and tokens/s;
    then the engine parity, when the study compared engines."""
    s = result.summary
    table = Table(
        title=(
            f"study {result.name}: {result.status} — {s.n_completed}/{s.n_planned} runs completed, "
            f"{s.n_failed} failed, {s.n_interrupted} interrupted, {s.n_skipped} not run"
        ),
        title_justify="left",
    )
    serving = any(a.j_per_request or a.goodput_per_s for a in result.aggregates)
    for column in (
        "#",
        "config",
        "n",
        "J/output token",
        "output tokens/s",
        *(("J/request (serving)", "goodput req/s (serving)") if serving else ()),
    ):
        table.add_column(column)
    rows: list[list[Cell]] = [
        [
            str(agg.index),
            agg.label,
            str(agg.n_completed),
            _aggregate(agg.j_per_output_token, ".4f") + _estimated_mark(agg),
            _aggregate(agg.output_tokens_per_s, ".2f"),
            *(
                [_optional(agg.j_per_request, ".4f"), _optional(agg.goodput_per_s, ".3f")]
                if serving
                else []
            ),
        ]
        for agg in result.aggregates
    ]
    add_rows(table, rows, label=1, width=width)
    energy = "n/a" if s.total_energy_j is None else f"{s.total_energy_j:,.1f} J"
    if s.estimated_energy_j is not None:
        energy += f"; estimated energy {s.estimated_energy_j:,.1f} J (not in the measured total)"
    table.caption = (
        f"mean ± 95% CI (std) across cycles\nwall time {s.wall_time_s:,.1f} s; "
        f"measured energy {energy}"
    )
    if result.parity is None:
        return table
    return Group(table, parity_table(result.parity), *_parity_alarms(result.parity))


def _estimated_mark(agg: ConfigAggregate) -> str:
    return " (estimated)" if agg.energy_method == "estimated" else ""


def _optional(agg: Aggregate | None, spec: str) -> str:
    return "n/a" if agg is None else _aggregate(agg, spec)


def parity_table(parity: StudyParity) -> Table:
    """One row per pair of engines compared: what differs and how often outputs agree."""
    table = Table(title="engine parity", title_justify="left")
    for column in (
        "configs",
        "settings that differ",
        "first k tokens same",
        "outputs same",
        "like for like",
    ):
        table.add_column(column)
    for group in parity.groups:
        engines = {m.index: m.engine for m in group.members}
        for c in group.comparisons:
            agreement = c.agreement
            if agreement.comparable:
                first = f"{agreement.first_k_identical:.0%} (k={agreement.k})"
                full = f"{agreement.fully_identical:.0%} of {agreement.n_requests}"
            else:
                first, full = escape(agreement.note), ""
            table.add_row(
                f"#{c.a} {engines[c.a]} vs #{c.b} {engines[c.b]}",
                escape(", ".join(c.differing) or "none"),
                first,
                full,
                "[green]yes[/]" if c.like_for_like else "[bold red]NO[/]",
            )
    return table


def _parity_alarms(parity: StudyParity) -> list[str]:
    lines = []
    for group in parity.groups:
        engines = {m.index: m.engine for m in group.members}
        for c in group.comparisons:
            if not c.like_for_like:
                lines.append(
                    f"[bold red]NOT LIKE FOR LIKE: #{c.a} {engines[c.a]} vs #{c.b} "
                    f"{engines[c.b]}[/]: " + escape("; ".join(c.reasons))
                )
    lines.extend(f"[yellow]parity:[/] {escape(note)}" for note in parity.notes)
    return lines


def _aggregate(agg: Any, spec: str) -> str:
    """``mean ± half-width`` and, below it, ``(std …)``: two short lines fit 80 columns."""
    if agg.mean is None:
        return "n/a"
    text = format(agg.mean, spec)
    if agg.ci95_half_width is not None:
        text += f" ± {format(agg.ci95_half_width, spec)}"
    if agg.std is not None:
        text += f"\n(std {format(agg.std, spec)})"
    return text
