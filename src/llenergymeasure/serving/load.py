"""The load generator: requests sent on an arrival schedule (or by closed-loop users) as
asyncio tasks in this process, each streamed and timed token by token.

One monitor task ticks every ``tick_s``: it samples the in-flight count, asks whether the
server is still there, and opens the steady-state window (``on_window_start``) once the
in-flight count has settled or the deadline has come (see ``serving.window``). The window
closes (``on_window_end``) at the end of the arrival period; the drain that follows lets
the requests still in flight finish, each within ``request_timeout_s``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from llenergymeasure.serving.arrivals import Schedule
from llenergymeasure.serving.client import InFlight, NotOpenAIError, RequestFailedError
from llenergymeasure.serving.window import StartRule, SteadyStateDetector, window_deadline_s

__all__ = ["LoadAbortedError", "LoadRecord", "LoadSpec", "ServerWatch", "WindowHooks", "run_load"]

_TICK_S = 0.1


class ServerWatch(Protocol):
    """Whether the server is still there; ``probe`` asks it over the network too."""

    async def gone(self, *, probe: bool) -> str | None:
        """Why the server is gone (it exited, it stopped answering), or None."""
        ...


@dataclass(frozen=True)
class WindowHooks:
    """Called at the two edges of the steady-state window, with the load time of the edge."""

    on_window_start: Callable[[float], Awaitable[None]]
    on_window_end: Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class LoadSpec:
    """What to send: an open-loop ``schedule``, or ``n_users`` closed-loop users until
    ``period_s`` has passed or ``n_requests`` were sent (whichever is given)."""

    schedule: Schedule | None
    n_users: int | None = None
    period_s: float | None = None
    n_requests: int | None = None
    max_concurrency: int | None = None
    min_window_s: float = 0.0
    request_timeout_s: float = 600.0
    tick_s: float = _TICK_S


@dataclass
class LoadRecord:
    """Everything the load generator saw."""

    requests: list[InFlight]
    in_flight: list[tuple[float, int]]
    window_start_s: float | None = None
    window_end_s: float | None = None
    start_rule: StartRule | None = None
    end_s: float | None = None


class LoadAbortedError(Exception):
    """The load stopped early: the server went away or stopped speaking the OpenAI API."""

    def __init__(self, reason: str, record: LoadRecord, *, not_openai: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.record = record
        self.not_openai = not_openai


@dataclass
class _State:
    spec: LoadSpec
    prompts: Sequence[tuple[str, str]]
    make_body: Callable[[str], dict[str, Any]]
    send: Callable[[dict[str, Any], InFlight], Awaitable[None]]
    watch: ServerWatch
    hooks: WindowHooks
    clock: Callable[[], float]
    record: LoadRecord = field(default_factory=lambda: LoadRecord([], []))
    latencies_s: list[float] = field(default_factory=list)
    n_in_flight: int = 0
    first_sent_s: float | None = None
    stop_sending: bool = False
    abort: LoadAbortedError | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


async def run_load(
    spec: LoadSpec,
    prompts: Sequence[tuple[str, str]],
    make_body: Callable[[str], dict[str, Any]],
    send: Callable[[dict[str, Any], InFlight], Awaitable[None]],
    *,
    watch: ServerWatch,
    hooks: WindowHooks,
    clock: Callable[[], float],
) -> LoadRecord:
    """Run the whole load (ramp-up, window, drain) and return what happened.

    ``prompts`` are (id, text) pairs, used in turn; ``make_body`` builds a request body
    from a prompt text; ``send`` streams one request into its record (see
    ``client.stream_request``). Raises LoadAbortedError, with the partial record, when the
    server goes away or answers something other than the OpenAI API.
    """
    state = _State(spec, prompts, make_body, send, watch, hooks, clock)
    monitor = asyncio.create_task(_monitor(state))
    try:
        if spec.schedule is not None:
            await _open_loop(state, spec.schedule)
        else:
            await _closed_loop(state)
        await _close_window(state)
        await _drain(state)
    finally:
        monitor.cancel()
        for task in list(state.tasks):
            task.cancel()
    if state.abort is not None:
        raise state.abort
    state.record.end_s = clock()
    return state.record


async def _open_loop(state: _State, schedule: Schedule) -> None:
    cap = state.spec.max_concurrency
    gate = asyncio.Semaphore(cap) if cap is not None else None
    for index, at_s in enumerate(schedule.times_s):
        await _sleep_until(state, at_s)
        if state.abort is not None:
            return
        _start(state, _one(state, _new_request(state, index, at_s), gate))
    await _sleep_until(state, schedule.period_s)


async def _closed_loop(state: _State) -> None:
    counter = itertools.count()
    users = [_start(state, _user(state, counter)) for _ in range(state.spec.n_users or 1)]
    # The window closes when the monitor stops the users, not when their last answers end.
    await asyncio.gather(*users, return_exceptions=True)


def _start(state: _State, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    task = asyncio.create_task(work)
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
    return task


async def _user(state: _State, counter: itertools.count[int]) -> None:
    while not state.stop_sending and state.abort is None:
        request = _new_request(state, next(counter), None)
        await _one(state, request, None)


def _new_request(state: _State, index: int, scheduled_s: float | None) -> InFlight:
    prompt_id, _ = state.prompts[index % len(state.prompts)]
    request = InFlight(index=index, prompt_id=prompt_id, scheduled_s=scheduled_s)
    request.dispatched_s = state.clock()
    state.record.requests.append(request)
    return request


async def _one(state: _State, request: InFlight, gate: asyncio.Semaphore | None) -> None:
    if gate is not None:
        async with gate:
            await _send(state, request)
    else:
        await _send(state, request)


async def _send(state: _State, request: InFlight) -> None:
    if state.abort is not None:
        return
    _, text = state.prompts[request.index % len(state.prompts)]
    body = state.make_body(text)
    request.sent_s = state.clock()
    if state.first_sent_s is None:
        state.first_sent_s = request.sent_s
    state.n_in_flight += 1
    try:
        await asyncio.wait_for(state.send(body, request), state.spec.request_timeout_s)
    except NotOpenAIError as err:
        request.error = f"not an OpenAI stream: {err}"
        _abort(state, f"the server's answer is not an OpenAI stream: {err}", not_openai=True)
    except RequestFailedError as err:
        request.error = str(err)
        if err.connection:
            gone = await state.watch.gone(probe=True)
            if gone is not None:
                _abort(state, gone)
    except asyncio.TimeoutError:
        request.error = f"no complete answer within {state.spec.request_timeout_s:g} s"
    finally:
        state.n_in_flight -= 1
    if request.completed and request.sent_s is not None and request.done_s is not None:
        state.latencies_s.append(request.done_s - request.sent_s)


def _abort(state: _State, reason: str, *, not_openai: bool = False) -> None:
    if state.abort is None:
        state.abort = LoadAbortedError(reason, state.record, not_openai=not_openai)
        state.stop_sending = True


async def _monitor(state: _State) -> None:
    detector = SteadyStateDetector()
    spec = state.spec
    while True:
        now = state.clock()
        state.record.in_flight.append((now, state.n_in_flight))
        gone = await state.watch.gone(probe=False)
        if gone is not None:
            _abort(state, gone)
            for task in list(state.tasks):
                task.cancel()
            return
        if state.record.window_start_s is None:
            rule = detector.observe(
                now,
                state.n_in_flight,
                state.latencies_s,
                first_sent_s=state.first_sent_s,
                deadline_reached=_deadline_reached(state, now),
            )
            if rule is not None:
                await _open_window(state, rule)
        elif spec.schedule is None and _closed_loop_done(state, now):
            await _close_window(state)
        await asyncio.sleep(spec.tick_s)


def _deadline_reached(state: _State, now: float) -> bool:
    spec = state.spec
    if spec.schedule is not None:
        return now >= window_deadline_s(spec.schedule.period_s, spec.min_window_s)
    if spec.period_s is not None:
        return now >= window_deadline_s(spec.period_s, spec.min_window_s)
    sent = sum(r.sent_s is not None for r in state.record.requests)
    return sent * 2 >= (spec.n_requests or 0)


def _closed_loop_done(state: _State, now: float) -> bool:
    spec = state.spec
    start = state.record.window_start_s
    if start is None or now - start < spec.min_window_s:
        return False
    if spec.period_s is not None:
        return now >= spec.period_s
    return len(state.record.requests) >= (spec.n_requests or 0)


async def _open_window(state: _State, rule: StartRule) -> None:
    if state.record.window_start_s is not None or state.abort is not None:
        return
    at_s = state.clock()
    state.record.window_start_s = at_s
    state.record.start_rule = rule
    await state.hooks.on_window_start(at_s)


async def _close_window(state: _State) -> None:
    if state.abort is not None or state.record.window_end_s is not None:
        return
    if state.record.window_start_s is None:  # the period ended before any tick opened it
        await _open_window(state, "deadline")
    at_s = state.clock()
    state.record.window_end_s = at_s
    state.stop_sending = True
    await state.hooks.on_window_end(at_s)


async def _drain(state: _State) -> None:
    while state.tasks and state.abort is None:
        await asyncio.wait(list(state.tasks), timeout=state.spec.tick_s)


async def _sleep_until(state: _State, at_s: float) -> None:
    while state.abort is None:
        delay = at_s - state.clock()
        if delay <= 0:
            return
        await asyncio.sleep(min(delay, state.spec.tick_s))
