"""How to run an experiment, as distinct from what it measures: never part of the config hash.

``strict`` refuses, rather than warns about, a GPU that another process is using or
that lacks free memory for the model. ``lock`` takes the device locks (one per GPU in
scope, one for the CPU packages when RAPL is read) from the first idle reading to the
end of the window; a run that finds a device locked waits up to ``lock_timeout_s``
with a countdown, then fails naming the holder.

:class:`Overrides` are the parts of a run that a caller supplies in place of what the
config and the host would give: an engine, an energy sampler, telemetry sources, a
stand-in for pynvml. Tests pass doubles this way; one bundle travels from
:func:`~llenergymeasure.experiment.run.run_experiment` through both pre-flights.

The CLI passes the options to :func:`~llenergymeasure.experiment.run.run_experiment`; study
children and runners in other environments read them from the environment
(:meth:`RunOptions.from_environ`), where the CLI puts them for the processes it starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llenergymeasure.errors import ConfigError

if TYPE_CHECKING:
    from llenergymeasure.energy.base import EnergySampler
    from llenergymeasure.energy.telemetry import TelemetrySource
    from llenergymeasure.engines.base import Engine

__all__ = ["DEFAULT_LOCK_TIMEOUT_S", "MAX_LOCK_TIMEOUT_S", "Overrides", "RunOptions"]

# Long enough to outwait another run's baseline and short window, short enough that a
# run queued behind a long study says so within minutes.
DEFAULT_LOCK_TIMEOUT_S = 300.0
# A day: longer is no wait but a hang (an infinite one never fails).
MAX_LOCK_TIMEOUT_S = 86_400.0
_STRICT = "LLEM_STRICT"
_NO_LOCK = "LLEM_NO_LOCK"
_LOCK_TIMEOUT = "LLEM_LOCK_TIMEOUT_S"
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class RunOptions:
    """Run-time options of one experiment (see the module docstring)."""

    strict: bool = False
    lock: bool = True
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S

    def __post_init__(self) -> None:
        if not 0 <= self.lock_timeout_s <= MAX_LOCK_TIMEOUT_S:  # NaN fails too
            raise ConfigError(
                f"--lock-timeout ({_LOCK_TIMEOUT}) must be 0 to {MAX_LOCK_TIMEOUT_S:g} "
                f"seconds, got {self.lock_timeout_s:g}"
            )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RunOptions:
        """The options ``LLEM_STRICT``, ``LLEM_NO_LOCK`` and ``LLEM_LOCK_TIMEOUT_S`` set."""
        env = os.environ if environ is None else environ
        raw_timeout = env.get(_LOCK_TIMEOUT, "").strip()
        try:
            timeout_s = float(raw_timeout) if raw_timeout else DEFAULT_LOCK_TIMEOUT_S
        except ValueError:
            raise ConfigError(
                f"{_LOCK_TIMEOUT}={raw_timeout!r} is not a number of seconds"
            ) from None
        return cls(
            strict=env.get(_STRICT, "").strip().lower() in _TRUE,
            lock=env.get(_NO_LOCK, "").strip().lower() not in _TRUE,
            lock_timeout_s=timeout_s,
        )

    def environ(self) -> dict[str, str]:
        """These options as the environment variables :meth:`from_environ` reads."""
        return {
            _STRICT: "1" if self.strict else "0",
            _NO_LOCK: "0" if self.lock else "1",
            _LOCK_TIMEOUT: f"{self.lock_timeout_s:g}",
        }


@dataclass(frozen=True)
class Overrides:
    """What replaces the engine, sampler, telemetry or pynvml the config and host would give.

    ``None`` keeps the usual choice: the config's engine, the sampler and telemetry
    the host supports, the installed pynvml.
    """

    engine: Engine | None = None
    sampler: EnergySampler | None = None
    telemetry: Sequence[TelemetrySource] | None = None
    nvml: object | None = None
