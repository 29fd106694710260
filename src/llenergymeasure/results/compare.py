"""Results side by side: the headline metrics of runs, studies or study configs, with ratios.

Each path given becomes one column per config it holds (a run: one; a study: one per
config, its cycles averaged). Every column is divided by the first. Columns measured
under different methodology versions, on different devices, on different GPU models or
GPU power limits, or with different energy methods are not comparable: :func:`compare`
refuses them unless ``force`` is set, and then lists each mismatch so the caller can say
it loudly. Estimated energy (a run's ``energy.estimated``) has rows of its own, never
mixed with the measured ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from llenergymeasure.errors import ResultError
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.results.collection import RunResult, load_runs, open_results

__all__ = [
    "HEADLINE_METRICS",
    "Column",
    "Comparison",
    "Metric",
    "compare",
    "device_of",
    "gpus_of",
]


@dataclass(frozen=True)
class Metric:
    """A headline figure of one experiment; ``better`` says which way is an improvement."""

    key: str
    name: str
    unit: str
    better: str  # "lower" or "higher"
    read: Callable[[ExperimentResult], float | None]


def _latency(result: ExperimentResult, which: str, percentile: str = "p50_ms") -> float | None:
    stats = getattr(result.latency, which)
    return None if stats is None else float(getattr(stats, percentile))


def _estimated(result: ExperimentResult, figure: str) -> float | None:
    estimated = result.energy.estimated
    return None if estimated is None else getattr(estimated, figure)


HEADLINE_METRICS: tuple[Metric, ...] = (
    Metric("j_per_output_token", "energy per output token", "J", "lower",
           lambda r: r.energy.j_per_output_token),
    Metric("output_tokens_per_s", "output tokens/s", "tok/s", "higher",
           lambda r: r.throughput.output_tokens_per_s),
    Metric("energy_j", "energy (window)", "J", "lower", lambda r: r.energy.total_j),
    Metric("adjusted_j", "energy adjusted for idle", "J", "lower", lambda r: r.energy.adjusted_j),
    Metric("j_per_request", "energy per request", "J", "lower", lambda r: r.energy.j_per_request),
    Metric("mean_power_w", "mean power", "W", "lower", lambda r: r.power.mean_w),
    Metric("latency_p50_ms", "latency p50", "ms", "lower", lambda r: _latency(r, "e2e")),
    Metric("latency_p99_ms", "latency p99", "ms", "lower", lambda r: _latency(r, "e2e", "p99_ms")),
    Metric("ttft_p50_ms", "TTFT p50", "ms", "lower", lambda r: _latency(r, "ttft")),
    Metric("itl_p50_ms", "inter-token p50", "ms", "lower", lambda r: _latency(r, "itl")),
    Metric("window_s", "window", "s", "lower", lambda r: r.window.duration_s),
    Metric("peak_device_mib", "peak device memory", "MiB", "lower",
           lambda r: r.memory.peak_device_mib),
    Metric("estimated_j", "estimated energy (not measured)", "J", "lower",
           lambda r: _estimated(r, "total_j")),
    Metric("estimated_j_per_output_token", "estimated energy per output token", "J", "lower",
           lambda r: _estimated(r, "j_per_output_token")),
    # serving runs only (None for offline ones)
    Metric("achieved_rate_per_s", "achieved arrival rate", "req/s", "higher",
           lambda r: r.serving.arrival.achieved_rate_per_s if r.serving else None),
    Metric("goodput_per_s", "goodput", "req/s", "higher",
           lambda r: r.serving.goodput.goodput_per_s if r.serving else None),
    Metric("ttft_p90_ms", "TTFT p90", "ms", "lower",
           lambda r: r.serving.latency.ttft.p90_ms if r.serving and r.serving.latency.ttft
           else None),
)  # fmt: skip


def device_of(result: ExperimentResult) -> str:
    """What the experiment ran and was measured on, e.g. ``cuda:0 (NVIDIA H100); gpu:0``."""
    env = result.environment
    names = [str(a["name"]) for a in env.accelerators if isinstance(a, dict) and "name" in a]
    on = result.model.device or "?"
    hardware = ", ".join(names) if on.startswith(("cuda", "gpu")) and names else env.cpu_model
    domains = ", ".join(d.domain for d in result.energy.domains) or "no energy domain"
    return f"{on} ({hardware or 'unknown hardware'}); measured {domains}"


def gpus_of(result: ExperimentResult) -> tuple[str, str]:
    """The measured GPUs' models and power limits, e.g. ``("NVIDIA H200", "700 W")``.

    ``("", "")`` for a run that measured no GPU. The GPUs are the accelerators the run
    marked in scope, else those whose NVML index names a ``gpu:N`` energy domain.
    """
    accelerators = [a for a in result.environment.accelerators if isinstance(a, dict)]
    scoped = [a for a in accelerators if a.get("in_scope")]
    if not scoped:
        measured = {d.domain for d in result.energy.domains}
        scoped = [a for a in accelerators if f"gpu:{a.get('index')}" in measured]
    models = ", ".join(str(a.get("name", "?")) for a in scoped)
    limits = ", ".join(_watts(a.get("power_limit_w")) for a in scoped)
    return models, limits


def _watts(value: object) -> str:
    return f"{value:g} W" if isinstance(value, int | float) else "unknown"


@dataclass(frozen=True)
class Column:
    """One config's runs: the mean of each headline metric over its completed cycles."""

    name: str
    n_runs: int
    values: dict[str, float | None]
    methodology: frozenset[str]
    devices: frozenset[str]
    energy_methods: frozenset[str]
    gpu_models: frozenset[str] = frozenset()
    power_limits: frozenset[str] = frozenset()
    modes: frozenset[str] = frozenset({"offline"})


@dataclass(frozen=True)
class Comparison:
    """Columns side by side; ``ratios[i][key]`` = column i / column 0 (None when undefined)."""

    columns: tuple[Column, ...]
    ratios: tuple[dict[str, float | None], ...]
    mismatches: tuple[str, ...]


def compare(paths: Sequence[Path], *, force: bool = False) -> Comparison:
    """Compare the results at ``paths``; ResultError when fewer than two columns result,
    or when they are not comparable and ``force`` is not set.
    """
    columns: list[Column] = []
    for path in paths:
        results = open_results(path)
        runs = load_runs(results)
        if not runs:
            raise ResultError(f"{path} has no completed run to compare")
        groups: dict[str, list[RunResult]] = {}
        for run in runs:
            groups.setdefault(run.entry.config_hash, []).append(run)
        for group in groups.values():
            name = results.name if len(groups) == 1 else f"{results.name}: {group[0].entry.label}"
            columns.append(_column(name, group))
    columns = _distinct_names(columns)
    if len(columns) < 2:
        raise ResultError(
            "compare needs at least two things to compare; these paths hold one config",
            hint="give two run or study folders, or a study with several configs",
        )
    modes = {mode for column in columns for mode in column.modes}
    if len(modes) > 1:  # not a mismatch --force may show: the figures mean different things
        raise ResultError(
            "not comparable: offline and serving runs measure different things "
            f"({_sides(columns, lambda c: c.modes)})",
            hint="compare offline runs with offline runs and serving runs with serving runs",
        )
    mismatches = _mismatches(columns)
    if mismatches and not force:
        raise ResultError(
            "not comparable: " + "; ".join(mismatches),
            hint="compare results measured the same way, or pass --force to show them anyway",
        )
    base = columns[0].values
    ratios = tuple(
        {key: _ratio(column.values[key], base[key]) for key in base} for column in columns
    )
    return Comparison(tuple(columns), ratios, tuple(mismatches))


def _column(name: str, runs: Sequence[RunResult]) -> Column:
    values: dict[str, float | None] = {}
    for metric in HEADLINE_METRICS:
        known = [v for run in runs if (v := metric.read(run.result)) is not None]
        values[metric.key] = math.fsum(known) / len(known) if known else None
    return Column(
        name=name,
        n_runs=len(runs),
        values=values,
        methodology=frozenset(run.result.methodology.version for run in runs),
        devices=frozenset(device_of(run.result) for run in runs),
        energy_methods=frozenset(
            method for run in runs if (method := run.result.energy.method) is not None
        ),
        gpu_models=frozenset(m for run in runs if (m := gpus_of(run.result)[0])),
        power_limits=frozenset(w for run in runs if (w := gpus_of(run.result)[1])),
        modes=frozenset(run.result.mode for run in runs),
    )


def _distinct_names(columns: Sequence[Column]) -> list[Column]:
    """Columns named alike (the same folder given twice) get ``#2``, ``#3``..."""
    counts: dict[str, int] = {}
    named = []
    for column in columns:
        counts[column.name] = counts.get(column.name, 0) + 1
        n = counts[column.name]
        named.append(column if n == 1 else replace(column, name=f"{column.name} #{n}"))
    return named


def _mismatches(columns: Sequence[Column]) -> list[str]:
    checks: tuple[tuple[str, Callable[[Column], frozenset[str]]], ...] = (
        ("methodology versions differ", lambda c: c.methodology),
        ("GPU models differ", lambda c: c.gpu_models),
        ("GPU power limits differ", lambda c: c.power_limits),
        ("devices differ", lambda c: c.devices),
        ("energy methods differ", lambda c: c.energy_methods),
    )
    problems = []
    for what, get in checks:
        sides = _sides(columns, get)
        if " vs " in sides:
            problems.append(f"{what}: {sides}")
    return problems


def _sides(columns: Sequence[Column], get: Callable[[Column], frozenset[str]]) -> str:
    """Each value of ``get`` with the columns that have it: ``a (x) vs b (y, z)``."""
    seen: dict[str, list[str]] = {}
    for column in columns:
        for value in sorted(get(column)):
            seen.setdefault(value, []).append(column.name)
    return " vs ".join(f"{value} ({_names(names)})" for value, names in seen.items())


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:2])
    return shown + (f" and {len(names) - 2} more" if len(names) > 2 else "")


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return value / base
