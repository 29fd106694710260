"""What a load record means: per-request records, rates, the window, latencies, goodput.

Everything here is load time (seconds since the load started) and pure: energy is added
by the experiment, which owns the energy sampler.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from llenergymeasure.config.serving import ServingConfig, SLOConfig
from llenergymeasure.records.base import LatencyStats
from llenergymeasure.records.serving import (
    ArrivalSummary,
    GoodputResult,
    ServingLatency,
    ServingRequestRecord,
    SteadyWindow,
)
from llenergymeasure.serving.client import InFlight
from llenergymeasure.serving.load import LoadRecord
from llenergymeasure.serving.window import mean_between

__all__ = [
    "RATE_TOLERANCE",
    "TokenCounter",
    "arrival_summary",
    "finished_records",
    "goodput",
    "meets_slo",
    "serving_latency",
    "steady_window",
    "tpot_ms",
]

# The load generator kept its schedule when its achieved rate is this close to it.
RATE_TOLERANCE = 0.05

TokenCounter = Callable[[str], int]


def tpot_ms(request: ServingRequestRecord) -> float | None:
    """Time per output token after the first: (E2E - TTFT) / (tokens - 1)."""
    if request.first_token_s is None or request.done_s is None:
        return None
    n = request.n_output_tokens
    if n is None or n < 2:
        return None
    return (request.done_s - request.first_token_s) * 1000.0 / (n - 1)


def _ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (b - a) * 1000.0


def meets_slo(request: ServingRequestRecord, slo: SLOConfig) -> bool | None:
    """Whether a completed request meets every target that is set; None without targets."""
    if not slo.is_set:
        return None
    if request.error is not None or request.done_s is None:
        return False
    checks = (
        (slo.ttft_ms, _ms(request.sent_s, request.first_token_s)),
        (slo.tpot_ms, tpot_ms(request)),
        (slo.e2e_ms, _ms(request.sent_s, request.done_s)),
    )
    # A target the request cannot be judged on (no TPOT for one token) is not missed.
    return all(target is None or value is None or value <= target for target, value in checks)


def finished_records(
    record: LoadRecord,
    slo: SLOConfig,
    count_tokens: TokenCounter | None = None,
) -> tuple[ServingRequestRecord, ...]:
    """Every request as a record: tokens from the server's usage, else ``count_tokens``
    over the streamed text, else the number of streamed chunks."""
    start, end = record.window_start_s, record.window_end_s
    found = []
    for r in record.requests:
        n_out, source = _output_tokens(r, count_tokens)
        arrived = r.scheduled_s if r.scheduled_s is not None else r.dispatched_s
        in_window = (
            start is not None and end is not None and arrived is not None and start <= arrived < end
        )
        plain = ServingRequestRecord(
            index=r.index,
            prompt_id=r.prompt_id,
            scheduled_s=r.scheduled_s,
            sent_s=r.sent_s,
            first_token_s=r.first_token_s,
            done_s=r.done_s if r.completed else None,
            token_times_s=tuple(r.token_times_s),
            n_input_tokens=r.n_input_tokens,
            n_output_tokens=n_out,
            output_tokens_source=source,
            finish_reason=r.finish_reason,
            error=r.error,
            in_window=in_window,
        )
        found.append(plain.model_copy(update={"met_slo": meets_slo(plain, slo)}))
    return tuple(found)


def _output_tokens(
    request: InFlight, count_tokens: TokenCounter | None
) -> tuple[int | None, str | None]:
    if request.n_output_tokens is not None:
        return request.n_output_tokens, "usage"
    if not request.completed:
        return None, None
    if count_tokens is not None:
        return count_tokens("".join(request.text_parts)), "tokenizer"
    return len(request.token_times_s), "chunks"


def arrival_summary(
    config: ServingConfig,
    record: LoadRecord,
    *,
    seed: int,
    period_s: float,
    scheduled_rate_per_s: float | None,
) -> ArrivalSummary:
    """The rates asked for and kept, and how late the generator dispatched arrivals.

    The achieved rate is the arrivals dispatched over the time they took: the arrival
    period, or longer when the generator dispatched its last arrival after it.
    """
    arrival = config.arrival
    sent = [r for r in record.requests if r.sent_s is not None]
    last = max((r.dispatched_s or 0.0 for r in record.requests), default=0.0)
    span_s = max(period_s, last)
    achieved = len(record.requests) / span_s if span_s > 0 else None
    if arrival.process == "closed":
        scheduled_rate_per_s = None
    error = (
        achieved / scheduled_rate_per_s - 1.0
        if achieved is not None and scheduled_rate_per_s
        else None
    )
    lateness = [
        (r.dispatched_s - r.scheduled_s) * 1000.0
        for r in record.requests
        if r.scheduled_s is not None and r.dispatched_s is not None
    ]
    return ArrivalSummary(
        process=arrival.process,
        requested_rate_per_s=arrival.rate,
        burstiness=arrival.burstiness if arrival.process == "gamma" else None,
        n_users=arrival.n_users,
        max_concurrency=config.max_concurrency,
        seed=seed,
        n_scheduled=len(record.requests),
        n_sent=len(sent),
        scheduled_rate_per_s=scheduled_rate_per_s,
        achieved_rate_per_s=achieved,
        rate_error=error,
        lateness_ms=LatencyStats.of(lateness),
        fell_behind=error is not None and abs(error) > RATE_TOLERANCE,
        arrival_period_s=period_s,
    )


@dataclass(frozen=True)
class WindowCounts:
    """Completions and streamed tokens inside the window."""

    n_completed: int
    n_output_tokens: float


def window_counts(
    requests: Sequence[ServingRequestRecord], start_s: float, end_s: float
) -> WindowCounts:
    """Requests completed in [start, end) and their tokens streamed in it; a request's
    tokens are apportioned by its chunks (usage counts tokens, chunks carry the times)."""
    completed = sum(1 for r in requests if r.done_s is not None and start_s <= r.done_s < end_s)
    tokens = 0.0
    for r in requests:
        times = r.token_times_s
        if not times or r.n_output_tokens is None:
            continue
        inside = sum(1 for t in times if start_s <= t < end_s)
        tokens += r.n_output_tokens * inside / len(times)
    return WindowCounts(completed, tokens)


def steady_window(
    record: LoadRecord,
    requests: Sequence[ServingRequestRecord],
    *,
    started_at: datetime,
    min_window_s: float,
) -> SteadyWindow:
    """The window as recorded; ``started_at`` is the UTC time of load time 0."""
    start = record.window_start_s or 0.0
    end = record.window_end_s if record.window_end_s is not None else start
    counts = window_counts(requests, start, end)
    first_sent = min((r.sent_s for r in requests if r.sent_s is not None), default=start)
    last_done = max((r.done_s for r in requests if r.done_s is not None), default=end)
    duration = end - start
    return SteadyWindow(
        start_s=start,
        end_s=end,
        duration_s=duration,
        started_at=started_at + timedelta(seconds=start),
        ended_at=started_at + timedelta(seconds=end),
        start_rule=record.start_rule or "deadline",
        ramp_up_s=max(0.0, start - first_sent),
        drain_s=max(0.0, last_done - end),
        min_window_s=min_window_s,
        # the clock's last digits must not fail a window that was timed to the minimum
        meets_min_window=duration + 1e-3 >= min_window_s,
        mean_in_flight=mean_between(record.in_flight, start, end),
        n_arrived=sum(r.in_window for r in requests),
        n_completed=counts.n_completed,
        n_output_tokens=counts.n_output_tokens,
    )


def serving_latency(requests: Sequence[ServingRequestRecord]) -> ServingLatency:
    """TTFT, token-level inter-token latency, E2E, TPOT and client queueing, over the
    completed requests that arrived in the window."""
    done = [r for r in requests if r.in_window and r.done_s is not None]
    gaps = [(b - a) * 1000.0 for r in done for a, b in itertools.pairwise(r.token_times_s)]
    queued = [
        v for r in requests if r.in_window and (v := _ms(r.scheduled_s, r.sent_s)) is not None
    ]
    return ServingLatency(
        ttft=LatencyStats.of(
            [v for r in done if (v := _ms(r.sent_s, r.first_token_s)) is not None]
        ),
        itl=LatencyStats.of(gaps),
        e2e=LatencyStats.of([v for r in done if (v := _ms(r.sent_s, r.done_s)) is not None]),
        tpot=LatencyStats.of([v for r in done if (v := tpot_ms(r)) is not None]),
        client_queue=LatencyStats.of(queued),
    )


def goodput(
    requests: Sequence[ServingRequestRecord], slo: SLOConfig, window: SteadyWindow
) -> GoodputResult:
    """Requests completed inside the window that met every SLO target, per second."""
    done = [
        r for r in requests if r.done_s is not None and window.start_s <= r.done_s < window.end_s
    ]
    met = sum(1 for r in done if r.met_slo)
    seconds = window.duration_s
    return GoodputResult(
        ttft_ms=slo.ttft_ms,
        tpot_ms=slo.tpot_ms,
        e2e_ms=slo.e2e_ms,
        n_evaluated=len(done),
        n_met=met if slo.is_set else 0,
        goodput_per_s=met / seconds if slo.is_set and seconds > 0 else None,
        attainment=met / len(done) if slo.is_set and done else None,
    )
