"""Wall time of each step of an experiment, for ``ExperimentResult.timings``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from llenergymeasure.records.result import TimingResult

__all__ = ["StepClock"]


class StepClock:
    """``with clock("load_s"): ...`` times that block; ``add=True`` adds to the step's time.

    ``preset_s`` gives steps a spine does not time itself (e.g. ``prepare_s=0.0``).
    """

    def __init__(self, **preset_s: float) -> None:
        self._start = time.perf_counter()
        self._seconds: dict[str, float] = dict(preset_s)

    @contextmanager
    def __call__(self, step: str, *, add: bool = False) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - began
            self._seconds[step] = spent + (self._seconds.get(step, 0.0) if add else 0.0)

    def result(self, window_s: float) -> TimingResult:
        """Every step's seconds, the window's, and the whole experiment's so far."""
        return TimingResult(
            **self._seconds, window_s=window_s, total_s=time.perf_counter() - self._start
        )
