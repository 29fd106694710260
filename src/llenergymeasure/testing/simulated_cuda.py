"""A simulated CUDA device: one stream that runs queued work in order, and timing events with
the behaviour of ``torch.cuda.Event`` (the subset llem calls).

Pass its ``Event`` and ``current_stream`` wherever torch's are taken, or put them in place
of ``torch.cuda.Event``/``torch.cuda.current_stream`` in a test::

    device = SimulatedCudaDevice(ManualClock(0.0))
    clock = EventStepClock(lambda: device.Event(enable_timing=True),
                           stream=device.current_stream(), clock=device.clock)

The host issues work with :meth:`SimulatedCudaDevice.launch` (a kernel of so many
seconds): the device starts it once it is free and the host has issued it, so work issued
faster than it runs queues up, as on a real GPU. An event recorded on the stream completes
when everything issued before it has. As with CUDA, ``elapsed_time`` refuses events that
were not created with ``enable_timing=True`` or not recorded, and fails with "device not
ready" while the later event is still pending; every host wait (``synchronize`` of the
device or of an event) is counted in ``n_host_waits``, since each one drains the queue.
With a :class:`~llenergymeasure.testing.simulated_nvml.ManualClock`, a wait moves the clock
to the moment the device gets there, as a blocked host would see it; with a real clock it
sleeps.
"""

# torch's spelling (Event as a factory attribute) is kept: matching it is the point.
# ruff: noqa: N802

from __future__ import annotations

import time
from collections.abc import Callable

from llenergymeasure.testing.simulated_nvml import ManualClock

__all__ = ["SimulatedCudaDevice", "SimulatedCudaEvent", "SimulatedCudaStream"]


class SimulatedCudaStream:
    """The device's one stream (what ``torch.cuda.current_stream()`` returns)."""

    def __init__(self, device: SimulatedCudaDevice) -> None:
        self.device = device


class SimulatedCudaDevice:
    """One GPU with one stream; times are on ``clock`` (a ManualClock or a real clock)."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock: Callable[[], float] = clock if clock is not None else ManualClock()
        self.free_at_s = self.clock()  # when the work issued so far will be done
        self.n_host_waits = 0
        self._stream = SimulatedCudaStream(self)

    def launch(self, seconds: float) -> None:
        """Issue a kernel that runs for ``seconds`` once the device reaches it."""
        self.free_at_s = max(self.free_at_s, self.clock()) + seconds

    def current_stream(self, device: object = None) -> SimulatedCudaStream:
        """The stream work is issued on (one per device here)."""
        return self._stream

    def synchronize(self) -> None:
        """Block the host until every issued kernel has run (``torch.cuda.synchronize``)."""
        self.n_host_waits += 1
        self.wait_until(self.free_at_s)

    def Event(
        self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False
    ) -> SimulatedCudaEvent:
        """A new event, as ``torch.cuda.Event(enable_timing=...)``."""
        return SimulatedCudaEvent(self, enable_timing=enable_timing)

    def wait_until(self, t_s: float) -> None:
        now = self.clock()
        if t_s <= now:
            return
        if isinstance(self.clock, ManualClock):
            self.clock.set(t_s)
        else:
            time.sleep(t_s - now)


class SimulatedCudaEvent:
    """A CUDA event: a marker in the stream that completes when the device reaches it."""

    def __init__(self, device: SimulatedCudaDevice, *, enable_timing: bool) -> None:
        self._device = device
        self.enable_timing = enable_timing
        self.done_at_s: float | None = None  # None until recorded

    def record(self, stream: SimulatedCudaStream | None = None) -> None:
        """Enqueue the marker; returns at once."""
        if stream is not None and stream.device is not self._device:
            raise RuntimeError("the stream belongs to another device")
        self.done_at_s = max(self._device.free_at_s, self._device.clock())

    def query(self) -> bool:
        """Whether the device has reached the marker (True for an event never recorded)."""
        return self.done_at_s is None or self._device.clock() >= self.done_at_s

    def synchronize(self) -> None:
        """Block the host until the device reaches the marker."""
        self._device.n_host_waits += 1
        if self.done_at_s is not None:
            self._device.wait_until(self.done_at_s)

    def elapsed_time(self, end_event: SimulatedCudaEvent) -> float:
        """Milliseconds between this event and ``end_event`` on the device."""
        if not (self.enable_timing and end_event.enable_timing):
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
        if self.done_at_s is None or end_event.done_at_s is None:
            raise RuntimeError("Both events must be recorded before calculating elapsed time.")
        if not (self.query() and end_event.query()):
            raise RuntimeError("CUDA error: device not ready")
        return (end_event.done_at_s - self.done_at_s) * 1000.0
