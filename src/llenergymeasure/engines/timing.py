"""Per-request times under static batching, from one timestamp per decoding step, and the
clocks that take those timestamps without stalling the device.

On a GPU, reading the host clock at each step says when the step was *queued*, not when
it ran, and waiting for the device there (a synchronize) empties the launch queue: a
launch-bound model then idles between steps. :class:`EventStepClock` records a CUDA event
per step instead (an asynchronous marker on the stream) and reads them all once the batch
is done. On the CPU, where work runs as it is called, :class:`HostStepClock` reads the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from llenergymeasure.engines.base import BatchTiming, RequestOutput

__all__ = [
    "STATIC_BATCH_TIMING",
    "EventStepClock",
    "HostStepClock",
    "StepClock",
    "StepMarker",
    "requests_from_steps",
]


class StepClock(Protocol):
    """Times one batch: ``start()`` before it, ``step()`` at every decoding step, then
    ``resolve()`` once it has finished."""

    def start(self) -> None:
        """The batch starts now."""
        ...

    def step(self) -> None:
        """A decoding step has been issued; called from inside ``generate``."""
        ...

    def resolve(self, indices: Sequence[int]) -> BatchTiming:
        """The batch's start and step completion times, on the host's perf_counter clock."""
        ...


class HostStepClock:
    """Step times from the host clock, for devices that run work as it is issued (the CPU)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._start_s = 0.0
        self._steps: list[float] = []

    def start(self) -> None:
        self._steps = []
        self._start_s = self._clock()

    def step(self) -> None:
        self._steps.append(self._clock())

    def resolve(self, indices: Sequence[int]) -> BatchTiming:
        return BatchTiming(tuple(indices), self._start_s, tuple(self._steps))


class EventStepClock:
    """Step completion times of a CUDA stream, from events read once after the batch.

    ``new_event`` makes a timing event (``lambda: torch.cuda.Event(enable_timing=True)``),
    recorded on ``stream`` (the stream the model runs on; None: the current one).
    Recording one enqueues a marker and returns at once, so the host never waits on the
    device inside the batch. ``resolve`` waits for the last event (the batch's only wait)
    and places every event on the host clock: the start event is recorded on an idle
    stream (the window and every batch end with a synchronisation), so its host time is
    the batch's start, and each step is that plus the device time between the two events.
    """

    def __init__(
        self,
        new_event: Callable[[], Any],
        *,
        stream: Any = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._new_event = new_event
        self._stream = stream
        self._clock = clock
        self._start_s = 0.0
        self._start: Any = None
        self._events: list[Any] = []

    def start(self) -> None:
        self._events = []
        self._start = self._new_event()
        self._start.record(self._stream)
        self._start_s = self._clock()

    def step(self) -> None:
        event = self._new_event()
        event.record(self._stream)
        self._events.append(event)

    def resolve(self, indices: Sequence[int]) -> BatchTiming:
        if self._events:
            self._events[-1].synchronize()
        steps = tuple(
            self._start_s + self._start.elapsed_time(event) / 1000.0 for event in self._events
        )
        self._events = []
        return BatchTiming(tuple(indices), self._start_s, steps)


class StepMarker:
    """A transformers stopping criterion that never stops: it tells a step clock about every
    decoding step of ``generate``.

    It must not wait for the device nor allocate per step: it runs inside the decode loop.
    """

    def __init__(self, clock: StepClock) -> None:
        self._clock = clock
        self._never: Any = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        self._clock.step()
        never = self._never
        if never is None or never.shape[0] != input_ids.shape[0]:
            import torch

            never = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            self._never = never
        return never


STATIC_BATCH_TIMING = (
    "static batching, one timestamp per decoding step: TTFT = batch start -> the batch's first "
    "generated token (shared by every request of the batch, which share the prefill); "
    "inter-token latency = mean step time over the request's own later tokens; "
    "latency = batch start -> the step that produced the request's last token"
)


def requests_from_steps(
    *,
    batch_start_s: float,
    step_times_s: Sequence[float],
    indices: Sequence[int],
    n_input_tokens: Sequence[int],
    n_output_tokens: Sequence[int],
    token_ids: Sequence[tuple[int, ...]] | None = None,
) -> list[RequestOutput]:
    """One RequestOutput per request of a batch.

    ``step_times_s[k]`` is when token ``k+1`` of every live sequence was produced.
    A request that produced ``n`` tokens finished at step ``n``.
    """
    records = []
    for row, index in enumerate(indices):
        n_out = n_output_tokens[row]
        if n_out > 0 and step_times_s:
            last = step_times_s[min(n_out, len(step_times_s)) - 1]
            ttft_ms: float | None = (step_times_s[0] - batch_start_s) * 1000.0
            latency_ms = (last - batch_start_s) * 1000.0
            itl_ms = (last - step_times_s[0]) * 1000.0 / (n_out - 1) if n_out > 1 else None
        else:
            ttft_ms, itl_ms = None, None
            latency_ms = (
                (step_times_s[-1] if step_times_s else batch_start_s) - batch_start_s
            ) * 1e3
        records.append(
            RequestOutput(
                index=index,
                n_input_tokens=n_input_tokens[row],
                n_output_tokens=n_out,
                latency_ms=latency_ms,
                ttft_ms=ttft_ms,
                itl_ms=itl_ms,
                token_ids=token_ids[row] if token_ids is not None else (),
            )
        )
    return records
