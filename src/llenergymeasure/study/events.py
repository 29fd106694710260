"""What a running experiment tells the study while it runs: phases, progress, waits.

Inside an isolated child the experiment reports through a ``Reporter``
(``experiment/reporter.py``); :class:`EventReporter` turns those calls into
:class:`RunEvent` values and hands them to a ``send`` function: the fork server's queue,
a runner's JSON lines, or (on a Ray cluster) the worker's line to the driver. Events
are small and JSON-shaped, so every path carries the same thing, and the parent's
silence watchdog counts each one as a sign of life.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from llenergymeasure.experiment.reporter import NullReporter, WindowSoFar

__all__ = ["PROGRESS_EVERY_S", "EventKind", "EventReporter", "RunEvent"]

EventKind = Literal["phase", "progress", "wait", "alert"]
_KINDS: tuple[EventKind, ...] = ("phase", "progress", "wait", "alert")

# ``advance`` runs inside the measured window: a child sends at most one progress event
# per this many seconds (and always the last one), so that reporting stays negligible.
PROGRESS_EVERY_S = 0.5


# Alike energy/telemetry.py:DeviceSample, kept apart because only the field shape matches
@dataclass(frozen=True)
class RunEvent:
    """One thing a running experiment (or the executor watching it) has to say.

    - ``phase``: a step starts; ``text`` is its name (``baseline``, ``measuring``, ...).
    - ``progress``: ``done`` of ``total`` units of countable work named ``text``
      (requests of the window, warm-up runs); engines count completed requests. In the
      measured window it also carries ``n_output_tokens`` generated so far and
      ``energy_j`` the traced devices used since the window began, obtained by
      ``energy_method`` (``counter`` or ``integrated``); each None when not known.
    - ``wait``: a countdown of ``seconds`` begins (``text`` says why: thermal floor,
      baseline, a GPU's rest between runs).
    - ``alert``: something is wrong with the run's worker (``text``); shown, not fatal.
    """

    kind: EventKind
    text: str
    done: int | None = None
    total: int | None = None
    seconds: float | None = None
    n_output_tokens: int | None = None
    energy_j: float | None = None
    energy_method: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object (what crosses a pipe or a Ray call)."""
        data: dict[str, Any] = {"kind": self.kind, "text": self.text}
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunEvent | None:
        """The inverse of :meth:`to_json`; None for anything that is not an event."""
        kind = data.get("kind")
        text = data.get("text")
        if kind not in _KINDS or not isinstance(text, str):
            return None
        try:
            return cls(
                kind=kind,
                text=text,
                done=_optional(int, data.get("done")),
                total=_optional(int, data.get("total")),
                seconds=_optional(float, data.get("seconds")),
                n_output_tokens=_optional(int, data.get("n_output_tokens")),
                energy_j=_optional(float, data.get("energy_j")),
                energy_method=_method(data.get("energy_method")),
            )
        except (TypeError, ValueError):
            return None


_OPTIONAL = ("done", "total", "seconds", "n_output_tokens", "energy_j", "energy_method")


def _method(value: Any) -> str | None:
    return value if value in ("counter", "integrated") else None


def _optional(kind: type[int] | type[float], value: Any) -> Any:
    return None if value is None else kind(value)


class EventReporter(NullReporter):
    """The experiment's Reporter inside a child: every call becomes a :class:`RunEvent`.

    ``info`` lines go to the child's output, which is the run's log.
    """

    def __init__(
        self, send: Callable[[RunEvent], None], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._send = send
        self._clock = clock
        self._what = ""
        self._total: int | None = None
        self._sent_at = float("-inf")

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._send(RunEvent("phase", name))
        yield

    def info(self, message: str) -> None:
        print(message, flush=True)

    def start_progress(self, total: int, description: str) -> None:
        self._what, self._total = description, total
        self._sent_at = self._clock()
        self._send(RunEvent("progress", description, done=0, total=total))

    def advance(self, done: int, so_far: WindowSoFar | None = None) -> None:
        now = self._clock()
        if now - self._sent_at < PROGRESS_EVERY_S and done != self._total:
            return
        self._sent_at = now
        self._send(
            RunEvent(
                "progress",
                self._what,
                done=done,
                total=self._total,
                n_output_tokens=so_far.n_output_tokens if so_far else None,
                energy_j=so_far.energy.energy_j if so_far and so_far.energy else None,
                energy_method=so_far.energy.method if so_far and so_far.energy else None,
            )
        )

    def wait(self, seconds: float, reason: str) -> None:
        self._send(RunEvent("wait", reason, seconds=seconds))
        time.sleep(seconds)
