"""What a serving experiment measured (``mode: serving``), as frozen records.

Times of the load are *load time*: seconds since the load generator started (the first
arrival is at 0 for open-loop processes). A figure that was not measured is ``None``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from llenergymeasure.records.base import FrozenRecord, LatencyStats
from llenergymeasure.records.energy import EnergyMethod

__all__ = [
    "SERVING_METHODOLOGY_WINDOW",
    "SERVING_TIMING",
    "ArrivalSummary",
    "GoodputResult",
    "QueueingDelay",
    "ServerInfo",
    "ServingLatency",
    "ServingRequestRecord",
    "ServingResult",
    "SteadyWindow",
]

SERVING_METHODOLOGY_WINDOW = (
    "serving steady state: energy sampler begin once the in-flight request count has "
    "stabilised after ramp-up -> requests arriving under the configured process -> sampler "
    "end at the end of the arrival period; the drain after it is outside"
)
SERVING_TIMING = (
    "client-side streaming (OpenAI API, llem's load generator): TTFT = request sent -> "
    "first streamed token; inter-token latency = every gap between consecutive streamed "
    "tokens (token level, not per-request means); E2E = sent -> last byte; TPOT = (E2E - "
    "TTFT) / (output tokens - 1). Distributions over the requests that arrived in the "
    "steady-state window"
)


class ServerInfo(FrozenRecord):
    """The server under load."""

    kind: Literal["launch", "endpoint"]
    url: str = Field(description="base URL of the OpenAI API, e.g. http://127.0.0.1:41234/v1")
    model: str = Field(description="the model name the requests named")
    command: tuple[str, ...] = Field((), description="the launch command; () for an endpoint")
    pid: int | None = None
    startup_s: float | None = Field(None, description="launch -> health check answered")
    log_file: str | None = Field(None, description="the server's output, beside result.json")
    energy_attribution: str = Field(description="whose energy the figures include")


class ArrivalSummary(FrozenRecord):
    """The schedule asked for and the one the load generator kept."""

    process: str
    requested_rate_per_s: float | None = Field(description="the configured rate; None: closed")
    burstiness: float | None
    n_users: int | None
    max_concurrency: int | None
    seed: int
    n_scheduled: int = Field(description="arrivals in the schedule that was kept")
    n_sent: int
    scheduled_rate_per_s: float | None = Field(
        description="the rate of the seeded schedule itself (a random process deviates)"
    )
    achieved_rate_per_s: float | None = Field(description="arrivals dispatched per second")
    rate_error: float | None = Field(description="achieved / scheduled - 1")
    lateness_ms: LatencyStats | None = Field(description="dispatch - scheduled arrival")
    fell_behind: bool = Field(description="achieved rate more than 5 % off the schedule")
    arrival_period_s: float = Field(description="first arrival -> end of arrivals")


class SteadyWindow(FrozenRecord):
    """The steady-state window: after ramp-up, before the drain."""

    start_s: float = Field(description="load time of the sampler's begin")
    end_s: float = Field(description="load time of the sampler's end (end of arrivals)")
    duration_s: float
    started_at: datetime
    ended_at: datetime
    start_rule: Literal["stabilised", "deadline"] = Field(
        description="stabilised: the in-flight count settled; deadline: it had not by then"
    )
    ramp_up_s: float = Field(description="first arrival -> window start")
    drain_s: float = Field(description="window end -> last response")
    min_window_s: float
    meets_min_window: bool
    mean_in_flight: float | None
    n_arrived: int = Field(description="requests that arrived inside the window")
    n_completed: int = Field(description="requests that completed inside the window")
    n_output_tokens: float = Field(
        description="output tokens streamed inside the window (a request's tokens "
        "apportioned by its chunks' arrival times)"
    )


class ServingLatency(FrozenRecord):
    """Latency distributions over the requests that arrived in the window."""

    ttft: LatencyStats | None
    itl: LatencyStats | None = Field(description="every gap between streamed tokens")
    e2e: LatencyStats | None
    tpot: LatencyStats | None
    client_queue: LatencyStats | None = Field(
        description="scheduled arrival -> sent (waiting for max_concurrency)"
    )


class QueueingDelay(FrozenRecord):
    """Time requests waited in the server's queue, from its own metrics."""

    source: str
    n: int
    mean_ms: float | None = Field(description="exact: the histogram's sum / count")
    p50_at_most_ms: float | None = Field(
        description="upper bound: the bound of the bucket the median falls in"
    )
    p90_at_most_ms: float | None
    p99_at_most_ms: float | None


class GoodputResult(FrozenRecord):
    """Requests meeting every SLO target that is set."""

    ttft_ms: float | None
    tpot_ms: float | None
    e2e_ms: float | None
    n_evaluated: int = Field(description="requests completed inside the window")
    n_met: int
    goodput_per_s: float | None = Field(description="n_met / window; None with no SLO set")
    attainment: float | None = Field(description="n_met / n_evaluated")


class ServingRequestRecord(FrozenRecord):
    """One request as the load generator saw it (load times in seconds)."""

    index: int
    prompt_id: str
    scheduled_s: float | None = Field(description="its arrival in the schedule; None: closed")
    sent_s: float | None
    first_token_s: float | None
    done_s: float | None
    token_times_s: tuple[float, ...] = Field(description="arrival of every streamed token")
    n_input_tokens: int | None
    n_output_tokens: int | None
    output_tokens_source: Literal["usage", "tokenizer", "chunks"] | None
    finish_reason: str | None
    error: str | None = None
    in_window: bool = Field(False, description="arrived inside the steady-state window")
    met_slo: bool | None = None


class ServingResult(FrozenRecord):
    """The serving part of an ExperimentResult."""

    server: ServerInfo
    api: Literal["chat", "completions"]
    arrival: ArrivalSummary
    window: SteadyWindow
    latency: ServingLatency
    goodput: GoodputResult
    queueing: QueueingDelay | None = Field(description="None when the server reports none")
    requests_per_s: float = Field(description="completions inside the window / window")
    output_tokens_per_s: float
    j_per_request: float | None = Field(description="window energy / completions in it")
    j_per_output_token: float | None
    mean_power_w: float | None
    energy_method: EnergyMethod | None = Field(
        None,
        description="how the energy figures above were obtained: the measured headline's "
        "method, or `estimated` when nothing was measured (never a sum of the two)",
    )
    n_failed: int
    n_warmup_requests: int
    timing: str = SERVING_TIMING
    requests: tuple[ServingRequestRecord, ...] = ()
