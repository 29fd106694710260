"""The server's own queueing delay, from its Prometheus ``/metrics`` (vLLM has one).

vLLM's histogram ``vllm:request_queue_time_seconds`` counts, per request, the time from
its arrival in the engine to its first scheduling. Scraped at both edges of the window,
the difference of the two scrapes covers the requests that left the queue inside the
window: its mean is exact (sum / count); of its percentiles the buckets give only upper
bounds (the bound of the bucket each falls in).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llenergymeasure.records.serving import QueueingDelay

if TYPE_CHECKING:
    import httpx

__all__ = [
    "QUEUE_METRIC",
    "Histogram",
    "parse_histogram",
    "quantile_at_most",
    "queueing_delay",
    "scrape_histogram",
]

QUEUE_METRIC = "vllm:request_queue_time_seconds"
# name{labels} value  (labels optional; the value may be NaN or +Inf)
_SAMPLE = re.compile(
    r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)"
)
_LE = re.compile(r'le="([^"]+)"')


@dataclass(frozen=True)
class Histogram:
    """A histogram summed over its label sets: cumulative counts by upper bound."""

    buckets: tuple[tuple[float, float], ...]  # (le, cumulative count), le ascending
    total_s: float
    count: float

    def minus(self, earlier: Histogram) -> Histogram:
        """What was added since ``earlier`` (same buckets)."""
        before = dict(earlier.buckets)
        return Histogram(
            tuple((le, n - before.get(le, 0.0)) for le, n in self.buckets),
            self.total_s - earlier.total_s,
            self.count - earlier.count,
        )


def parse_histogram(text: str, name: str) -> Histogram | None:
    """The histogram ``name`` in a Prometheus text exposition; None when it is absent."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    found = False
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match is None:
            continue
        metric, labels, raw = match.group("name"), match.group("labels") or "", match.group("value")
        try:
            value = float(raw)
        except ValueError:
            continue
        if metric == f"{name}_bucket":
            le = _LE.search(labels)
            if le is not None:
                bound = math.inf if le.group(1) in ("+Inf", "Inf") else float(le.group(1))
                buckets[bound] = buckets.get(bound, 0.0) + value
                found = True
        elif metric == f"{name}_sum":
            total += value
        elif metric == f"{name}_count":
            count += value
    if not found:
        return None
    return Histogram(tuple(sorted(buckets.items())), total, count)


def quantile_at_most(q: float, histogram: Histogram) -> float | None:
    """An upper bound of the ``q`` quantile (0..1): the bound of the bucket that holds it.

    None with no observation, or when it lies in the last bucket (no upper bound). A
    histogram cannot say where inside a bucket its quantile lies; interpolating inside
    (as Prometheus's ``histogram_quantile`` does) would invent a figure.
    """
    if histogram.count <= 0 or not histogram.buckets:
        return None
    target = q * histogram.count
    for le, cumulative in histogram.buckets:
        if cumulative >= target:
            return None if math.isinf(le) else le
    return None


def queueing_delay(start: Histogram | None, end: Histogram | None) -> QueueingDelay | None:
    """The queueing delay of the requests scheduled between two scrapes, in ms."""
    if start is None or end is None:
        return None
    window = end.minus(start)
    n = round(window.count)
    bounds = [quantile_at_most(q, window) for q in (0.5, 0.9, 0.99)]
    p50, p90, p99 = (None if v is None else v * 1000.0 for v in bounds)
    return QueueingDelay(
        source=f"server /metrics, {QUEUE_METRIC} (difference of the scrapes at the window edges)",
        n=n,
        mean_ms=window.total_s / window.count * 1000.0 if window.count > 0 else None,
        p50_at_most_ms=p50,
        p90_at_most_ms=p90,
        p99_at_most_ms=p99,
    )


async def scrape_histogram(
    client: httpx.AsyncClient, metrics_url: str, name: str = QUEUE_METRIC
) -> Histogram | None:
    """Read one histogram from ``metrics_url``; None when the server has no such metric."""
    import httpx

    try:
        response = await client.get(metrics_url, timeout=5.0)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return parse_histogram(response.text, name)
