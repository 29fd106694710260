"""The serving section of the HTML report: the energy-latency curve across arrival rates.

For the serving configs of a study (cycles averaged per config): J/request against p90
TTFT with the TTFT target drawn, goodput and achieved throughput against the offered
rate with the saturation point marked, and a table of the figures behind them.

The *saturation point* is the highest offered rate whose achieved throughput still
follows the load (at least 95 % of what arrived in its window); past it the server
cannot keep up and queues grow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.report.chart import chart
from llenergymeasure.report.markup import grid, html_table, number, section
from llenergymeasure.report.svg import MUTED, PALETTE, VERMILLION, Rule, Series
from llenergymeasure.results.collection import RunResult

__all__ = ["FOLLOWS_SHARE", "ServingPoint", "saturation_rate", "serving_points", "serving_section"]

# Achieved throughput within this share of the offered rate still "follows" it.
FOLLOWS_SHARE = 0.95


@dataclass(frozen=True)
class ServingPoint:
    """One serving config, its cycles averaged."""

    label: str
    n_runs: int
    offered_per_s: float | None
    arrived_per_s: float | None  # arrivals inside the window, per second
    achieved_per_s: float | None
    goodput_per_s: float | None
    j_per_request: float | None
    ttft_p90_ms: float | None
    itl_p50_ms: float | None
    slo_ttft_ms: float | None


def _mean(
    runs: Sequence[ExperimentResult], read: Callable[[ExperimentResult], float | None]
) -> float | None:
    known = [v for r in runs if (v := read(r)) is not None and math.isfinite(v)]
    return math.fsum(known) / len(known) if known else None


def _offered(r: ExperimentResult) -> float | None:
    assert r.serving is not None
    arrival = r.serving.arrival
    return arrival.requested_rate_per_s or arrival.achieved_rate_per_s


def _arrived(r: ExperimentResult) -> float | None:
    window = r.serving.window if r.serving else None
    if window is None or window.duration_s <= 0:
        return None
    return window.n_arrived / window.duration_s


def serving_points(runs: Sequence[RunResult]) -> list[ServingPoint]:
    """The serving configs among ``runs``, by offered rate."""
    groups: dict[str, list[RunResult]] = {}
    for run in runs:
        if run.result.serving is not None:
            groups.setdefault(run.entry.config_hash, []).append(run)
    points = []
    for group in groups.values():
        results = [run.result for run in group]
        points.append(
            ServingPoint(
                label=group[0].entry.label,
                n_runs=len(results),
                offered_per_s=_mean(results, _offered),
                arrived_per_s=_mean(results, _arrived),
                achieved_per_s=_mean(
                    results, lambda r: r.serving.requests_per_s if r.serving else None
                ),
                goodput_per_s=_mean(
                    results, lambda r: r.serving.goodput.goodput_per_s if r.serving else None
                ),
                j_per_request=_mean(
                    results, lambda r: r.serving.j_per_request if r.serving else None
                ),
                ttft_p90_ms=_mean(results, _ttft_p90),
                itl_p50_ms=_mean(
                    results,
                    lambda r: (
                        r.serving.latency.itl.p50_ms
                        if r.serving and r.serving.latency.itl
                        else None
                    ),
                ),
                slo_ttft_ms=results[0].serving.goodput.ttft_ms if results[0].serving else None,
            )
        )
    return sorted(points, key=lambda p: (p.offered_per_s is None, p.offered_per_s or 0.0))


def _ttft_p90(r: ExperimentResult) -> float | None:
    if r.serving is None or r.serving.latency.ttft is None:
        return None
    return r.serving.latency.ttft.p90_ms


def saturation_rate(points: Sequence[ServingPoint]) -> float | None:
    """The highest offered rate before the first whose throughput falls below 95 % of the
    load offered in its window; None when no rate was followed (or none was measured).

    The load offered is what arrived in the window, not the nominal rate: a random process
    offers more or less than its rate over a short window, and that is not saturation.
    """
    followed = None
    for point in points:
        offered = point.arrived_per_s or point.offered_per_s
        if point.offered_per_s is None or offered is None or point.achieved_per_s is None:
            continue
        if point.achieved_per_s < FOLLOWS_SHARE * offered:
            return followed
        followed = point.offered_per_s
    return followed


def serving_section(runs: Sequence[RunResult]) -> str:
    """The report's serving section; empty when no run is a serving run."""
    points = serving_points(runs)
    if not points:
        return ""
    saturated = saturation_rate(points)
    charts = grid([_energy_latency_chart(points), _goodput_chart(points, saturated)])
    body = _note(points, saturated) + charts + _table(points)
    return section("Serving: energy and latency under load", body, "serving")


def _note(points: Sequence[ServingPoint], saturated: float | None) -> str:
    rates = [p.offered_per_s for p in points if p.offered_per_s is not None]
    if len(rates) < 2:
        text = "One offered rate: sweep serving.arrival.rate for the curve and its saturation."
    elif saturated is None:
        text = "Saturation point: none of the rates was followed (below 95 % at the lowest)."
    elif saturated >= max(rates):
        text = f"Saturation point: beyond {saturated:g} req/s (every rate measured was followed)."
    else:
        text = (
            f"Saturation point: {saturated:g} req/s, the highest offered rate whose achieved "
            "throughput was at least 95 % of the load that arrived in its window."
        )
    return f"<p>{escape(text)}</p>"


def _labels(points: Sequence[ServingPoint]) -> list[str]:
    return [f"{p.offered_per_s:g}/s" if p.offered_per_s is not None else p.label for p in points]


def _energy_latency_chart(points: Sequence[ServingPoint]) -> str:
    usable = [p for p in points if p.ttft_p90_ms is not None and p.j_per_request is not None]
    slo = next((p.slo_ttft_ms for p in points if p.slo_ttft_ms is not None), None)
    rules = [Rule(slo, f"TTFT SLO {slo:g} ms", VERMILLION)] if slo is not None else []
    return chart(
        [
            Series(
                "configs (label: offered rate)",
                [p.ttft_p90_ms or 0.0 for p in usable],
                [p.j_per_request for p in usable],
                labels=_labels(usable),
                tooltips=[p.label for p in usable],
            )
        ],
        title="Energy per request vs p90 TTFT",
        x_label="TTFT p90 (ms)",
        y_label="J / request",
        rules=rules,
        y_from_zero=True,
        empty_note="no serving run with both an energy figure and a TTFT",
    )


def _goodput_chart(points: Sequence[ServingPoint], saturated: float | None) -> str:
    usable = [p for p in points if p.offered_per_s is not None]
    xs = [p.offered_per_s or 0.0 for p in usable]
    rules = [Rule(saturated, f"saturation point {saturated:g} req/s")] if saturated else []
    return chart(
        [
            Series("offered", xs, xs, mode="lines", color=MUTED),
            Series("achieved", xs, [p.achieved_per_s for p in usable], color=PALETTE[0]),
            Series("goodput (meets SLO)", xs, [p.goodput_per_s for p in usable], color=PALETTE[2]),
        ],
        title="Goodput and throughput vs offered rate",
        x_label="offered rate (req/s)",
        y_label="requests / s",
        x_ticks=sorted(set(xs)) or None,
        rules=rules,
        y_from_zero=True,
        empty_note="no open-loop serving run",
    )


def _table(points: Sequence[ServingPoint]) -> str:
    header = [
        "config", "runs", "offered req/s", "achieved req/s", "goodput req/s",
        "J / request", "TTFT p90 ms", "inter-token p50 ms",
    ]  # fmt: skip
    rows = [
        [
            escape(p.label),
            str(p.n_runs),
            *(
                number(v)
                for v in (
                    p.offered_per_s,
                    p.achieved_per_s,
                    p.goodput_per_s,
                    p.j_per_request,
                    p.ttft_p90_ms,
                    p.itl_p50_ms,
                )
            ),
        ]
        for p in points
    ]
    return html_table(header, rows, "serving")
