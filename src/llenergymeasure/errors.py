"""The exception tree of llenergymeasure.

Every error the library raises on purpose is a :class:`LlemError`::

    LlemError                 root; ``hint`` says what to do next
    ├── ConfigError           a config, CLI flag or dataset that cannot be used as written
    ├── PreflightError        the host cannot run this experiment (all problems listed at once)
    ├── EngineError           the inference engine failed while loading or generating
    ├── ServerError           the server under load is unreachable, not OpenAI-compatible,
    │                         cannot bind its port, or died during the run
    ├── EnergyError           an energy sampler failed while measuring
    ├── StudyError            a study could not be planned, run or resumed
    └── ResultError           a result could not be written or read back

Vendor exceptions (torch, transformers, pynvml, ...) are translated into these
inside the plugin that calls the vendor, with ``raise ... from err``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EnergyError",
    "EngineError",
    "LlemError",
    "PreflightError",
    "ResultError",
    "ServerError",
    "StudyError",
]


class LlemError(Exception):
    """Root of every error llenergymeasure raises on purpose.

    ``hint`` is a one-line suggestion for the user, or ``None``.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(LlemError):
    """A config file, CLI flag, keyword argument or dataset is invalid."""


class PreflightError(LlemError):
    """Pre-flight checks found problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        self.problems = list(problems)
        if len(problems) == 1:
            message = f"pre-flight check failed: {problems[0]}"
        else:
            message = f"pre-flight found {len(problems)} problems: " + "; ".join(
                f"({i}) {p}" for i, p in enumerate(problems, 1)
            )
        super().__init__(message, hint=hint)


class EngineError(LlemError):
    """The inference engine failed to load the model or to generate."""


class ServerError(LlemError):
    """The server of a serving experiment cannot be used: it is unreachable, answers
    something other than the OpenAI API, cannot bind its port, or died during the run."""


class EnergyError(LlemError):
    """An energy sampler could not start, read or stop."""


class StudyError(LlemError):
    """A study could not be planned, run or resumed."""


class ResultError(LlemError):
    """A result could not be written, read or compared."""
