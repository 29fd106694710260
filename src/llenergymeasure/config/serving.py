"""The ``serving:`` section: measure an OpenAI-compatible server under an arrival process.

::

    mode: serving
    engine: vllm
    serving:
      server: launch                 # llem starts `vllm serve` on 127.0.0.1 (or: endpoint)
      arrival: {process: poisson, rate: 2.0}
      duration_s: 60
      slo: {ttft_ms: 500, tpot_ms: 50}

Validators are pure: whether the endpoint answers or the port is free is pre-flight's job.
"""

from __future__ import annotations

from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from llenergymeasure.config.base import StrictModel

__all__ = [
    "ARRIVAL_PROCESSES",
    "DEFAULT_DURATION_S",
    "ArrivalConfig",
    "LaunchConfig",
    "SLOConfig",
    "ServingConfig",
]

# Alike config/models.py (EngineName), kept apart because only the shape matches
ArrivalProcess = Literal["poisson", "gamma", "constant", "closed"]
ARRIVAL_PROCESSES: tuple[str, ...] = get_args(ArrivalProcess)
# Neither `duration_s` nor `n_requests` given: arrivals for this long.
DEFAULT_DURATION_S = 60.0


class LaunchConfig(StrictModel):
    """How llem starts the engine's server (``server: launch``)."""

    port: int | None = Field(
        None, ge=1, le=65_535, description="port on 127.0.0.1; None = a free port"
    )
    startup_timeout_s: float = Field(
        900.0,
        gt=0.0,
        le=86_400,
        allow_inf_nan=False,
        description="how long the server may take to load and answer its health check",
    )
    extra_args: list[str] = Field(
        default_factory=list,
        description="more `vllm serve` arguments, appended as given (e.g. [--max-logprobs, '0'])",
    )


class ArrivalConfig(StrictModel):
    """When requests arrive: an open-loop process at ``rate``, or ``n_users`` closed-loop users."""

    process: ArrivalProcess = "poisson"
    rate: float | None = Field(
        None,
        gt=0.0,
        le=100_000,
        allow_inf_nan=False,
        description="requests per second (poisson, gamma, constant)",
    )
    burstiness: float = Field(
        1.0,
        gt=0.0,
        le=1_000,
        allow_inf_nan=False,
        description=(
            "gamma only: the shape of the gamma inter-arrival distribution (mean 1/rate); "
            "1 = poisson, below 1 burstier, above 1 more regular"
        ),
    )
    n_users: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="closed only: users each sending their next request when the last ends",
    )

    @model_validator(mode="after")
    def _fields_of_the_process(self) -> ArrivalConfig:
        if self.process == "closed":
            if self.n_users is None:
                raise ValueError("`process: closed` needs `n_users` (concurrent users)")
            if self.rate is not None:
                raise ValueError("`process: closed` has no `rate`: its users send back to back")
        else:
            if self.rate is None:
                raise ValueError(f"`process: {self.process}` needs `rate` (requests per second)")
            if self.n_users is not None:
                raise ValueError("`n_users` applies to `process: closed` only")
        if self.burstiness != 1.0 and self.process != "gamma":
            raise ValueError("`burstiness` applies to `process: gamma` only")
        return self


class SLOConfig(StrictModel):
    """Latency targets; a request meets the SLO when it meets every target that is set."""

    ttft_ms: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    tpot_ms: float | None = Field(
        None,
        gt=0.0,
        allow_inf_nan=False,
        description="time per output token after the first: (E2E - TTFT) / (tokens - 1)",
    )
    e2e_ms: float | None = Field(None, gt=0.0, allow_inf_nan=False)

    @property
    def is_set(self) -> bool:
        """Whether any target is set (goodput is then the rate of requests meeting them)."""
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2e_ms))


class ServingConfig(StrictModel):
    """The ``serving:`` section of ``mode: serving``."""

    server: Literal["launch", "endpoint"] = Field(
        "launch",
        description="launch: llem starts the engine's server; endpoint: measure a running one",
    )
    endpoint: str | None = Field(
        None, description="base URL of a running server, e.g. http://127.0.0.1:8000/v1"
    )
    launch: LaunchConfig = LaunchConfig()
    api: Literal["chat", "completions"] = Field(
        "chat", description="/v1/chat/completions (the server templates) or /v1/completions"
    )
    arrival: ArrivalConfig = ArrivalConfig(rate=1.0)
    max_concurrency: int | None = Field(
        None, ge=1, le=100_000, description="requests in flight at most; the rest wait in llem"
    )
    duration_s: float | None = Field(
        None, gt=0.0, le=86_400, allow_inf_nan=False, description="how long requests arrive"
    )
    n_requests: int | None = Field(None, ge=1, le=10_000_000)
    seed: int | None = Field(
        None, ge=0, lt=2**32, description="seed of the arrival times; None = task.random_seed"
    )
    slo: SLOConfig = SLOConfig()
    request_timeout_s: float = Field(
        600.0, gt=0.0, le=86_400, allow_inf_nan=False, description="one request, send to end"
    )

    @model_validator(mode="before")
    @classmethod
    def _endpoint_means_endpoint(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("endpoint") is not None and "server" not in data:
            return {**data, "server": "endpoint"}
        return data

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_a_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"`endpoint` must be an http(s) URL such as http://host:8000/v1, got {value!r}"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _cross_field(self) -> ServingConfig:
        if self.server == "endpoint" and self.endpoint is None:
            raise ValueError("`server: endpoint` needs `endpoint: http://host:port/v1`")
        if self.server == "launch" and self.endpoint is not None:
            raise ValueError("`endpoint` measures a running server; remove it or `server: launch`")
        if self.duration_s is not None and self.n_requests is not None:
            raise ValueError("give `duration_s` or `n_requests`, not both")
        if self.max_concurrency is not None and self.arrival.process == "closed":
            raise ValueError("`max_concurrency` caps open-loop arrivals; closed loop has `n_users`")
        return self

    @property
    def planned_duration_s(self) -> float | None:
        """The arrival period by configuration (None when it is set by ``n_requests``)."""
        if self.n_requests is not None:
            return None
        return self.duration_s if self.duration_s is not None else DEFAULT_DURATION_S
