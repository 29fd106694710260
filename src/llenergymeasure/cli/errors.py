"""Error class -> exit code, in one table; one line per error on stderr."""

from __future__ import annotations

from llenergymeasure import errors

__all__ = ["EXIT_CODES", "EXIT_INTERRUPTED", "EXIT_OK", "exit_code_for"]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Config and pre-flight problems are the user's to fix before anything runs (2), and so is a
# server that cannot be reached, speaks another API or dies under load (2);
# failures while running are runtime errors (1).
EXIT_CODES: dict[type[errors.LlemError], int] = {
    errors.ConfigError: EXIT_USAGE,
    errors.PreflightError: EXIT_USAGE,
    errors.ServerError: EXIT_USAGE,
    errors.EngineError: EXIT_RUNTIME,
    errors.EnergyError: EXIT_RUNTIME,
    errors.StudyError: EXIT_RUNTIME,
    errors.ResultError: EXIT_RUNTIME,
}


def exit_code_for(err: errors.LlemError) -> int:
    """The exit code for an error, by its most specific class in the table."""
    for cls in type(err).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_RUNTIME
