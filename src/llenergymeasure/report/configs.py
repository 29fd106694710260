"""The configs of a result set, each with its runs and across-cycle aggregates, and the
per-config table of the report.

A *swept parameter* is any config field (dotted name) that takes two or more values
across the configs of the set, so groups and explicit experiment lists count too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.report.markup import html_table, mean_ci, number, param_text, section
from llenergymeasure.results.collection import AggregateView, ResultSet, RunResult
from llenergymeasure.results.export import Scalar, flatten

__all__ = [
    "ConfigRuns",
    "config_table",
    "configs_of",
    "j_per_token",
    "pareto_front",
    "swept_parameters",
    "tokens_per_s",
]


def j_per_token(result: ExperimentResult) -> float | None:
    return result.energy.j_per_output_token


def tokens_per_s(result: ExperimentResult) -> float | None:
    return result.throughput.output_tokens_per_s


@dataclass(frozen=True)
class ConfigRuns:
    """The runs of one config, with its across-cycle aggregates."""

    config_hash: str
    index: int
    label: str
    runs: tuple[RunResult, ...]
    params: dict[str, Scalar]
    jpt: AggregateView
    tps: AggregateView


def configs_of(results: ResultSet, runs: Sequence[RunResult]) -> list[ConfigRuns]:
    groups: dict[str, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(run.entry.config_hash, []).append(run)
    aggregates = {a.config_hash: a for a in (results.study.aggregates if results.study else ())}
    configs = []
    for config_hash, group in groups.items():
        agg = aggregates.get(config_hash)
        configs.append(
            ConfigRuns(
                config_hash=config_hash,
                index=group[0].entry.index,
                label=group[0].entry.label,
                runs=tuple(group),
                params=flatten(group[0].result.config.model_dump(mode="json")),
                jpt=agg.j_per_output_token if agg else _mean_only(group, j_per_token),
                tps=agg.output_tokens_per_s if agg else _mean_only(group, tokens_per_s),
            )
        )
    return sorted(configs, key=lambda c: c.index)


def _mean_only(
    runs: Sequence[RunResult], read: Callable[[ExperimentResult], float | None]
) -> AggregateView:
    """The mean without an interval, for sets without ``study_result.json`` (single runs)."""
    values = [v for run in runs if (v := read(run.result)) is not None]
    return AggregateView(n=len(values), mean=math.fsum(values) / len(values) if values else None)


def swept_parameters(params: Sequence[dict[str, Scalar]]) -> list[str]:
    """The config fields that take two or more values across ``params``, in field order."""
    values: dict[str, set[str]] = {}
    for flat in params:
        for key, value in flat.items():
            if value is not None:
                values.setdefault(key, set()).add(repr(value))
    return [key for key, seen in values.items() if len(seen) > 1]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indexes of the points no other point beats on both throughput (x, higher is better)
    and energy per token (y, lower is better), sorted by throughput.
    """
    front = [
        i
        for i, (x, y) in enumerate(points)
        if not any(
            (x2 >= x and y2 <= y) and (x2 > x or y2 < y)
            for j, (x2, y2) in enumerate(points)
            if j != i
        )
    ]
    return sorted(front, key=lambda i: points[i][0])


def config_table(results: ResultSet, configs: Sequence[ConfigRuns], swept: Sequence[str]) -> str:
    planned: dict[str, int] = {}
    for entry in results.entries:
        planned[entry.config_hash] = planned.get(entry.config_hash, 0) + 1
    header = [
        "#",
        "config",
        *swept,
        "runs",
        "J / output token (mean ± 95 % CI)",
        "output tokens/s (mean ± 95 % CI)",
        "mean power",
        "warnings",
    ]
    rows = []
    for c in configs:
        powers = [p for r in c.runs if (p := r.result.power.mean_w) is not None]
        codes = sorted({w.code for r in c.runs for w in r.result.warnings})
        rows.append(
            [
                str(c.index),
                escape(c.label),
                *[escape(param_text(c.params.get(p))) for p in swept],
                f"{len(c.runs)}/{planned.get(c.config_hash, len(c.runs))}",
                mean_ci(c.jpt, "J"),
                mean_ci(c.tps, "tok/s"),
                number(math.fsum(powers) / len(powers) if powers else None, "W"),
                escape(", ".join(codes)) or "none",
            ]
        )
    note = (
        '<p class="note">Mean across completed cycles; ± is the half-width of the two-sided '
        "95 % Student-t interval of the mean (n/a below two cycles).</p>"
    )
    if not configs:
        return section("Configs", '<p class="na">no completed run</p>', "configs")
    return section("Configs", note + html_table(header, rows, "wide"), "configs")
