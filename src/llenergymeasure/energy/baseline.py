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
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from llenergymeasure.config.models import BaselineConfig
from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.telemetry import TelemetrySource
from llenergymeasure.energy.trace import PowerTrace

__all__ = ["Baseline", "BaselineCache", "measure_baseline", "obtain_baseline"]


@dataclass(frozen=True)
class Baseline:
    """Idle power per domain and how it was obtained."""

    power_w_by_domain: dict[str, float]
    duration_s: float
    n_samples: int
    std_w: float | None
    method: str
    strategy: str
    measured_at: datetime
    note: str = "measured now"
    state: str | None = None

    @property
    def power_w(self) -> float:
        return sum(self.power_w_by_domain.values())

    def age_s(self, now: datetime) -> float:
        return max(0.0, (now - self.measured_at).total_seconds())


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
) -> Baseline:
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
    return Baseline(
        power_w_by_domain={
            d.domain: d.energy_j / seconds
            for d in reading.domains
            if d.energy_j is not None and d.method != "estimated" and domains(d.domain)
        },
        duration_s=seconds,
        n_samples=n_samples,
        std_w=std_w,
        method=reading.method or "none",
        strategy=strategy,
        measured_at=datetime.now(timezone.utc),
        state=state,
    )


class BaselineCache:
    """Baselines on disk, one JSON file per key (devices + driver + sampler)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def load(self, key: str) -> tuple[Baseline, int] | None:
        """The cached baseline and the runs since it was last checked, or None."""
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            baseline = Baseline(
                **{
                    **data["baseline"],
                    "measured_at": datetime.fromisoformat(data["baseline"]["measured_at"]),
                }
            )
            return baseline, int(data["runs_since_check"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # no cache, or one we cannot trust: measure afresh

    def save(self, key: str, baseline: Baseline, runs_since_check: int) -> None:
        """Write atomically; a cache we cannot write is not an error (the run measured anyway)."""
        record = asdict(baseline)
        record["measured_at"] = baseline.measured_at.isoformat()
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
) -> Baseline:
    """A baseline by the configured strategy (see the module docstring)."""

    def fresh(duration_s: float) -> Baseline:
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
    if hit is None or hit[0].age_s(now()) > config.cache_ttl_s:
        measured = fresh(config.duration_s)
        cache.save(key, measured, 0)
        return measured
    cached, runs = hit
    if config.strategy == "cached" or runs + 1 < config.validate_every:
        cache.save(key, cached, runs + 1)
        return replace(
            cached, strategy=config.strategy, note=f"cached, {runs + 1} runs since check"
        )
    spot = fresh(config.spot_check_s)
    drift = abs(spot.power_w - cached.power_w) / cached.power_w if cached.power_w > 0 else 0.0
    if drift > config.drift_threshold:
        measured = replace(
            fresh(config.duration_s), note=f"re-measured: spot check drifted {drift:.0%}"
        )
        cache.save(key, measured, 0)
        return measured
    cache.save(key, cached, 0)
    return replace(cached, strategy=config.strategy, note=f"cached, spot check drift {drift:.1%}")


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
) -> Baseline:
    """A secondary idle figure: the cached one while younger than ``ttl_s``, else measured now.

    Measured over ``duration_s`` (a spot check's length, not a full baseline's), so that
    keeping the figure costs a run nothing most of the time and a few seconds at worst.
    """
    hit = cache.load(key)
    if hit is not None and hit[0].age_s(now()) <= ttl_s:
        cached = hit[0]
        return replace(cached, strategy="cached", note=f"cached, {cached.age_s(now()):.0f} s old")
    measured = measure_baseline(
        sampler, duration_s, sleep=sleep, strategy="fresh", state=state, domains=domains
    )
    cache.save(key, measured, 0)
    return measured
