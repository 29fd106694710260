"""The plan of a serving experiment (``llem run serving.yaml --dry-run``): the server, the
arrival schedule and the window, with nothing started."""

from __future__ import annotations

import statistics

import yaml
from rich.console import Console
from rich.table import Table

from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.config.loading import UserConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.experiment.serving_plan import ServingPlan, plan_serving
from llenergymeasure.serving.arrivals import Schedule
from llenergymeasure.serving.window import MIN_SETTLE_S, window_deadline_s

__all__ = ["print_serving_plan", "schedule_lines"]

_N_SHOWN = 8


def print_serving_plan(
    out: Console, config: ExperimentConfig, *, user: UserConfig, strict: bool = False
) -> None:
    """Print the resolved config and the plan; starts no server and sends no request.

    ``strict`` refuses a shared GPU or one short of memory, as the run itself would.
    """
    plan = plan_serving(config, user=user, strict=strict)
    out.print("# resolved config", style="bold")
    out.print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), markup=False)
    table = Table(title="serving plan (nothing has run)", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for name, value in _rows(plan):
        table.add_row(name, value)
    out.print(table)


def _rows(plan: ServingPlan) -> list[tuple[str, str]]:
    serving, task = plan.serving, plan.config.task
    if serving.server == "launch":
        port = f"port {plan.port}" if plan.port else "a free port"
        server = f"launch {plan.config.engine} on 127.0.0.1, {port}, with {plan.runner_python}"
    else:
        server = f"endpoint {serving.endpoint} (already running)"
    return [
        ("server", server),
        ("model", f"{plan.model_name} on {', '.join(plan.devices)}"),
        ("api", f"{serving.api}, streaming; ≤ {task.max_output_tokens} output tokens"),
        ("prompts", f"{len(plan.prompts)} from {task.dataset.source}, used in turn"),
        *[("arrivals", line) for line in schedule_lines(plan)],
        *[("window", line) for line in _window_lines(plan)],
        ("SLO", _slo(plan)),
        ("energy sampler", f"{plan.sampler.name}: {plan.sampler_reason}"),
        ("config hash", measurement_config_hash(plan.config)),
    ]


def schedule_lines(plan: ServingPlan) -> list[str]:
    """The arrival process and, for open loops, the seeded schedule itself."""
    serving = plan.serving
    arrival = serving.arrival
    cap = f", at most {serving.max_concurrency} in flight" if serving.max_concurrency else ""
    if plan.schedule is None:
        until = (
            f"for {serving.planned_duration_s:g} s"
            if serving.planned_duration_s is not None
            else f"until {serving.n_requests} requests are sent"
        )
        return [f"closed loop: {arrival.n_users} users back to back, {until}"]
    schedule: Schedule = plan.schedule
    times = schedule.times_s
    gaps = [b - a for a, b in zip((0.0, *times), times, strict=False)]
    shape = f", burstiness {arrival.burstiness:g}" if arrival.process == "gamma" else ""
    cv = statistics.pstdev(gaps) / statistics.fmean(gaps) if len(gaps) > 1 else 0.0
    shown = ", ".join(f"{t:.3f}" for t in times[:_N_SHOWN]) + (
        " …" if len(times) > _N_SHOWN else ""
    )
    return [
        f"{arrival.process} at {arrival.rate:g} req/s{shape}{cap}, seed {plan.seed}",
        f"{len(times)} arrivals over {schedule.period_s:.1f} s "
        f"({schedule.rate_per_s or 0:.3f} req/s in this schedule; gap CV {cv:.2f})",
        f"first arrivals at (s): {shown}",
    ]


def _window_lines(plan: ServingPlan) -> list[str]:
    period = plan.schedule.period_s if plan.schedule else plan.serving.planned_duration_s
    start = (
        "once the in-flight count settles (mean over the last max(1 s, median latency) "
        f"within max(0.5, 10 %, √mean) of the span before; ≥ {MIN_SETTLE_S:g} s spans)"
    )
    lines = [f"starts {start}"]
    if period is not None:
        deadline = window_deadline_s(period, plan.min_window_s)
        lines.append(f"starts at the latest at {deadline:.1f} s; ends at {period:.1f} s")
    else:
        lines.append("starts at the latest once half the requests are sent")
    lines.append(f"at least {plan.min_window_s:g} s (measurement.min_window_s); drain excluded")
    return lines


def _slo(plan: ServingPlan) -> str:
    slo = plan.serving.slo
    targets = [
        f"{name} ≤ {value:g} ms"
        for name, value in (("TTFT", slo.ttft_ms), ("TPOT", slo.tpot_ms), ("E2E", slo.e2e_ms))
        if value is not None
    ]
    return ", ".join(targets) if targets else "none set (no goodput)"
