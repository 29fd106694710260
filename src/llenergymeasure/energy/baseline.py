"""Idle power of the measured devices, with the fresh/cached/validated strategies (DESIGN §4).

The baseline is the energy sampler's own reading over an idle interval, divided by
its length, per measured domain (estimated domains have no idle figure: an estimate
attributes energy to this run's processes only). ``cached`` reuses a recent baseline
of the same key (kept on disk); ``validated`` does too, but every ``validate_every``
runs spends ``spot_check_s`` re-checking it and re-measures in full when it drifted.
What the key holds (devices, driver, the engine's state) is the caller's choice: a
baseline is only reused for the same idle state. :func:`obtain_idle_figure` is the
short, cached measurement behind a secondary figure such as the no-context idle.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from llenergymeasure.config.models import BaselineConfig
from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.telemetry import TelemetrySource
from llenergymeasure.energy.trace import PowerTrace
from llenergymeasure.records.energy import BaselineResult

__all__ = [
    "BaselineCache",
    "baseline_age_s",
    "measure_baseline",
    "obtain_baseline",
    "obtain_idle_figure",
]


def baseline_age_s(baseline: BaselineResult, now: datetime) -> float:
    """Seconds since the baseline was measured (never negative)."""
    return max(0.0, (now - baseline.measured_at).total_seconds())


def _reused(cached: BaselineResult, strategy: str, note: str) -> BaselineResult:
    return cached.model_copy(update={"strategy": strategy, "note": note})


def measure_baseline(
    sampler: EnergySampler,
    duration_s: float,
    *,
    sources: Sequence[TelemetrySource] = (),
    interval_ms: int = 100,
    sleep: Callable[[float], None] = time.sleep,
    strategy: str = "fresh",
    state: str | None = None,
    domains: Callable[[str], bool] = lambda domain: True,
) -> BaselineResult:
    """Read the sampler over ``duration_s`` of idling; std from a power trace when there is one.

    Only measured domains that ``domains`` accepts get an idle figure.
    """
    trace = PowerTrace(sources, interval_ms) if sources else None
    if trace is not None:
        trace.start()
    sampler.begin()
    sleep(duration_s)
    reading = sampler.end()
    std_w, n_samples = None, reading.n_samples
    if trace is not None:
        recorded = trace.stop()
        totals = recorded.total_power_by_tick()
        n_samples = len(totals)
        std_w = statistics.stdev(totals) if len(totals) >= 2 else None
    seconds = reading.duration_s or duration_s
    by_domain = {
        d.domain: d.energy_j / seconds
        for d in reading.domains
        if d.energy_j is not None and d.method != "estimated" and domains(d.domain)
    }
    return BaselineResult(
        power_w=sum(by_domain.values()),
        power_w_by_domain=by_domain,
        duration_s=seconds,
        n_samples=n_samples,
        std_w=std_w,
        method=reading.method or "none",
        strategy=strategy,
        measured_at=datetime.now(timezone.utc),
        age_s=0.0,  # the result gives its age when it is used
        note="measured now",
        state=state,
    )


class BaselineCache:
    """Baselines on disk, one JSON file per key (devices + driver + sampler)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def load(self, key: str) -> tuple[BaselineResult, int] | None:
        """The cached baseline and the runs since it was last checked, or None."""
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            baseline = BaselineResult.model_validate(data["baseline"])
            return baseline, int(data["runs_since_check"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # no cache, or one we cannot trust: measure afresh

    def save(self, key: str, baseline: BaselineResult, runs_since_check: int) -> None:
        """Write atomically; a cache we cannot write is not an error (the run measured anyway)."""
        record = baseline.model_dump(mode="json")
        payload = json.dumps({"baseline": record, "runs_since_check": runs_since_check}, indent=2)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self._path(key).with_suffix(".tmp")
            tmp.write_text(payload, encoding="utf-8")
            tmp.replace(self._path(key))
        except OSError:
            return


def obtain_baseline(
    sampler: EnergySampler,
    config: BaselineConfig,
    *,
    key: str,
    cache: BaselineCache | None,
    sources: Sequence[TelemetrySource] = (),
    interval_ms: int = 100,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    state: str | None = None,
) -> BaselineResult:
    """A baseline by the configured strategy (see the module docstring)."""

    def fresh(duration_s: float) -> BaselineResult:
        return measure_baseline(
            sampler,
            duration_s,
            sources=sources,
            interval_ms=interval_ms,
            sleep=sleep,
            strategy=config.strategy,
            state=state,
        )

    if config.strategy == "fresh" or cache is None:
        return fresh(config.duration_s)
    hit = cache.load(key)
    if hit is None or baseline_age_s(hit[0], now()) > config.cache_ttl_s:
        measured = fresh(config.duration_s)
        cache.save(key, measured, 0)
        return measured
    cached, runs = hit
    if config.strategy == "cached" or runs + 1 < config.validate_every:
        cache.save(key, cached, runs + 1)
        return _reused(cached, config.strategy, f"cached, {runs + 1} runs since check")
    spot = fresh(config.spot_check_s)
    drift = abs(spot.power_w - cached.power_w) / cached.power_w if cached.power_w > 0 else 0.0
    if drift > config.drift_threshold:
        note = f"re-measured: spot check drifted {drift:.0%}"
        measured = fresh(config.duration_s).model_copy(update={"note": note})
        cache.save(key, measured, 0)
        return measured
    cache.save(key, cached, 0)
    return _reused(cached, config.strategy, f"cached, spot check drift {drift:.1%}")


def obtain_idle_figure(
    sampler: EnergySampler,
    *,
    key: str,
    cache: BaselineCache,
    duration_s: float,
    ttl_s: float,
    state: str,
    domains: Callable[[str], bool],
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> BaselineResult:
    """A secondary idle figure: the cached one while younger than ``ttl_s``, else measured now.

    Measured over ``duration_s`` (a spot check's length, not a full baseline's), so that
    keeping the figure costs a run nothing most of the time and a few seconds at worst.
    """
    hit = cache.load(key)
    if hit is not None and baseline_age_s(hit[0], now()) <= ttl_s:
        cached = hit[0]
        return _reused(cached, "cached", f"cached, {baseline_age_s(cached, now()):.0f} s old")
    measured = measure_baseline(
        sampler, duration_s, sleep=sleep, strategy="fresh", state=state, domains=domains
    )
    cache.save(key, measured, 0)
    return measured
