"""The server and the load of a serving experiment: start (or attach), warm up, drive.

The energy sampler's window is opened and closed by the load generator's hooks, at the
edges of the steady-state window; the trace gets a mark at each edge, and the server's
``/metrics`` are scraped at both so that its queueing delay covers the same window.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llenergymeasure.energy.base import EnergyReading
from llenergymeasure.energy.trace import PowerTrace
from llenergymeasure.engines.model_files import hf_folder
from llenergymeasure.engines.vllm import engine_kwargs
from llenergymeasure.errors import ServerError
from llenergymeasure.experiment.reporter import Reporter
from llenergymeasure.experiment.serving_plan import ServingPlan
from llenergymeasure.experiment.warmup import GPU_MIN_THERMAL_FLOOR_S
from llenergymeasure.records.result import WarmupResult
from llenergymeasure.records.serving import QueueingDelay, ServerInfo
from llenergymeasure.serving.client import (
    EndpointWatch,
    InFlight,
    NotOpenAIError,
    RequestFailedError,
    load_clock,
    new_client,
    request_body,
    run_sync,
    stream_request,
)
from llenergymeasure.serving.load import LoadRecord, LoadSpec, ServerWatch, WindowHooks, run_load
from llenergymeasure.serving.prometheus import Histogram, queueing_delay, scrape_histogram
from llenergymeasure.serving.server import LaunchedServer, free_port, vllm_server_argv

__all__ = ["Driven", "Server", "drive_load", "request_fields", "start_server", "warm_up"]

SERVER_LOG = "server.log"


@dataclass
class Server:
    """The server under load: where its API is, and (when launched) its process."""

    info: ServerInfo
    api_url: str
    launched: LaunchedServer | None = None

    def watch(self, client: Any) -> ServerWatch:
        """What tells the load generator that the server is gone."""
        if self.launched is not None:
            return self.launched
        return EndpointWatch(client, self.api_url)

    @property
    def metrics_url(self) -> str:
        """The Prometheus endpoint beside the API (``/metrics`` at the server's root)."""
        root = self.api_url[: -len("/v1")] if self.api_url.endswith("/v1") else self.api_url
        return root + "/metrics"


@contextlib.contextmanager
def start_server(plan: ServingPlan, log_dir: Path | None) -> Iterator[Server]:
    """Launch the engine's server and wait until it is healthy, or attach to the endpoint;
    a launched server is stopped when the block ends, however it ends."""
    serving = plan.serving
    attribution = plan.sampler_reason
    if serving.server == "endpoint":
        assert serving.endpoint is not None
        yield Server(
            ServerInfo(
                kind="endpoint",
                url=serving.endpoint,
                model=plan.model_name,
                pid=plan.server_process.pid,
                energy_attribution=attribution,
            ),
            serving.endpoint,
        )
        return
    assert plan.model is not None and plan.runner_python is not None
    folder, _ = hf_folder(plan.model)
    port = plan.port or free_port()
    on_cpu = not plan.on_gpu
    argv = vllm_server_argv(
        plan.runner_python,
        engine_kwargs(plan.config, folder, on_cpu=on_cpu),
        model_dir=folder,
        served_name=plan.model_name,
        port=port,
    )
    log = log_dir / SERVER_LOG if log_dir is not None else None
    with LaunchedServer(argv, port=port, env=_server_env(plan), log_file=log) as launched:
        plan.server_process.pid = launched.pid
        startup_s = launched.wait_ready(serving.launch.startup_timeout_s)
        info = ServerInfo(
            kind="launch",
            url=launched.base_url + "/v1",
            model=plan.model_name,
            command=tuple(argv),
            pid=launched.pid,
            startup_s=startup_s,
            log_file=SERVER_LOG if log is not None else None,
            energy_attribution=attribution,
        )
        yield Server(info, launched.base_url + "/v1", launched)


def _server_env(plan: ServingPlan) -> dict[str, str]:
    """This environment pointed at the server's interpreter: its bin first, no paths of ours."""
    import os

    assert plan.runner_python is not None
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    bin_dir = str(plan.runner_python.parent)
    env["PATH"] = os.pathsep.join(filter(None, [bin_dir, env.get("PATH")]))
    env["VIRTUAL_ENV"] = str(plan.runner_python.parent.parent)
    return env


def request_fields(plan: ServingPlan) -> dict[str, Any]:
    """Sampling fields of every request: the `vllm:` section's, and for a launched vLLM
    server its own extras (the seed, and truncation at ``max_input_tokens``)."""
    config = plan.config
    fields: dict[str, Any] = {}
    if config.vllm is not None:
        fields.update(config.vllm.sampling.model_dump(exclude_none=True))
    if plan.serving.server == "launch":
        fields["seed"] = config.task.random_seed
        fields["truncate_prompt_tokens"] = config.task.max_input_tokens
    if config.task.dataset.output_len is not None:
        fields["min_tokens"] = config.task.dataset.output_len
    return fields


def _max_tokens(plan: ServingPlan) -> int:
    task = plan.config.task
    return task.dataset.output_len or task.max_output_tokens


def _body_maker(plan: ServingPlan, server: Server) -> Callable[[str], dict[str, Any]]:
    fields = request_fields(plan)
    max_tokens = _max_tokens(plan)
    return lambda text: request_body(
        plan.serving.api, server.info.model, text, max_tokens=max_tokens, extra=fields
    )


def warm_up(plan: ServingPlan, server: Server, reporter: Reporter) -> WarmupResult:
    """Requests one after another: ``n_warmup`` of them, and on a GPU on through the thermal
    floor (the device stays busy, it does not cool before the window).

    The first answer also shows whether the server streams as the OpenAI API does.
    """
    config = plan.config.measurement.warmup
    n_wanted = config.n_warmup if config.enabled else 0
    on_gpu = plan.on_gpu and config.enabled
    floor_s = max(config.thermal_floor_s, GPU_MIN_THERMAL_FLOOR_S) if on_gpu else 0.0
    started = time.perf_counter()

    async def run() -> int:
        done = 0
        async with new_client(plan.serving.request_timeout_s) as client:
            reporter.start_progress(n_wanted, "warm-up")
            while done < n_wanted or time.perf_counter() - started < floor_s:
                await _warmup_request(plan, server, client, done)
                done += 1
                reporter.advance(done)
        return done

    n_runs = run_sync(run()) if config.enabled else 0
    return WarmupResult(
        n_runs=n_runs,
        mode="fixed" if config.enabled else "disabled",
        converged=None,
        final_cv=None,
        duration_s=time.perf_counter() - started,
        thermal_floor_s=floor_s,
    )


async def _warmup_request(plan: ServingPlan, server: Server, client: Any, index: int) -> None:
    prompt = plan.prompts[index % len(plan.prompts)]
    record = InFlight(index=index, prompt_id=prompt.id, scheduled_s=None)
    body = _body_maker(plan, server)(prompt.text)
    try:
        await stream_request(
            client, server.api_url, plan.serving.api, body, record, time.perf_counter
        )
    except (NotOpenAIError, RequestFailedError) as err:
        what = (
            "does not stream as the OpenAI API does"
            if isinstance(err, NotOpenAIError)
            else "failed a warm-up request"
        )
        raise ServerError(
            f"the server at {server.api_url} {what}: {err}",
            hint=f"check that the server serves the OpenAI API and the model `{server.info.model}`",
        ) from err


@dataclass(frozen=True)
class Driven:
    """What the load produced: the record, the energy of the window, its UTC edges."""

    record: LoadRecord
    energy: EnergyReading
    load_started_at: datetime
    queueing: QueueingDelay | None


def load_spec(plan: ServingPlan) -> LoadSpec:
    """The load generator's instructions, from the plan."""
    serving = plan.serving
    return LoadSpec(
        schedule=plan.schedule,
        n_users=serving.arrival.n_users,
        period_s=serving.planned_duration_s,
        n_requests=serving.n_requests,
        max_concurrency=serving.max_concurrency,
        min_window_s=plan.min_window_s,
        request_timeout_s=serving.request_timeout_s,
    )


def drive_load(plan: ServingPlan, server: Server, trace: PowerTrace) -> Driven:
    """Run the load; the energy sampler's window is the steady-state window.

    Raises LoadAbortedError (with the partial record) when the server goes away.
    """
    sampler = plan.sampler
    readings: dict[str, Any] = {}

    async def run() -> Driven:
        async with new_client(plan.serving.request_timeout_s) as client:

            async def on_start(at_s: float) -> None:
                sampler.begin()
                trace.mark("window_start")
                readings["start"] = await scrape_histogram(client, server.metrics_url)

            async def on_end(at_s: float) -> None:
                trace.mark("window_end")
                readings["energy"] = sampler.end()
                readings["end"] = await scrape_histogram(client, server.metrics_url)

            async def send(body: dict[str, Any], record: InFlight) -> None:
                await stream_request(client, server.api_url, plan.serving.api, body, record, clock)

            origin = time.perf_counter()
            started_at = datetime.now(timezone.utc)
            clock = load_clock(origin)
            prompts = [(p.id, p.text) for p in plan.prompts]
            record = await run_load(
                load_spec(plan),
                prompts,
                _body_maker(plan, server),
                send,
                watch=server.watch(client),
                hooks=WindowHooks(on_start, on_end),
                clock=clock,
            )
            start: Histogram | None = readings.get("start")
            end: Histogram | None = readings.get("end")
            return Driven(record, readings["energy"], started_at, queueing_delay(start, end))

    return run_sync(run())
