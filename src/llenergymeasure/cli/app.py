"""The ``llem`` command: a thin typer shell that maps errors to exit codes."""

from __future__ import annotations

import sys
import traceback

import typer

from llenergymeasure._version import tool_version
from llenergymeasure.cli.doctor import doctor_command
from llenergymeasure.cli.errors import EXIT_INTERRUPTED, EXIT_RUNTIME, EXIT_USAGE, exit_code_for
from llenergymeasure.cli.group import command_group
from llenergymeasure.cli.results import results_app
from llenergymeasure.cli.run import run_command
from llenergymeasure.cli.status import status_command
from llenergymeasure.errors import LlemError

__all__ = ["app", "main"]

app = command_group("llem", "Measure the energy, throughput and latency of LLM inference.")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"llem {tool_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="print the version"
    ),
) -> None:
    """Measure the energy, throughput and latency of LLM inference."""


app.command("run")(run_command)
app.command("doctor")(doctor_command)
app.command("config", help="Alias of `llem doctor`.")(doctor_command)
app.command("status", help="Alias of `llem results status`: where a study stands.")(status_command)
app.add_typer(results_app)


def _error(message: str, hint: str | None = None) -> None:
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")


# Options whose value may be left out, and what that means. typer has no optional-value
# options, so a bare `--resume` is completed here before parsing.
_OPTIONAL_VALUES = {"--resume": "latest"}


def _optional_values(args: list[str]) -> list[str]:
    completed: list[str] = []
    for i, arg in enumerate(args):
        completed.append(arg)
        following = args[i + 1] if i + 1 < len(args) else None
        if arg in _OPTIONAL_VALUES and (following is None or following.startswith("-")):
            completed.append(_OPTIONAL_VALUES[arg])
    return completed


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and return its exit code (no traceback unless --verbose)."""
    args = _optional_values(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args
    try:
        code = app(args=args, prog_name="llem", standalone_mode=False)
    except typer.Exit as done:
        return int(done.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
    except typer.TyperException as err:
        if type(err).__name__ == "NoArgsIsHelpError":
            return 0  # the help has been printed: that is what a bare `llem` asks for
        _error(err.format_message(), "see `llem --help` or `llem run --help`")
        return int(getattr(err, "exit_code", EXIT_USAGE))
    except LlemError as err:
        if verbose:
            traceback.print_exc()
        _error(err.message, err.hint)
        return exit_code_for(err)
    except Exception as err:  # the last line of defence: never a bare traceback
        if verbose:
            traceback.print_exc()
        _error(f"internal error: {type(err).__name__}: {err}", "rerun with --verbose and report it")
        return EXIT_RUNTIME
    # typer turns Ctrl-C inside a command into a returned exit code rather than an exception.
    if code == EXIT_INTERRUPTED:
        _error("interrupted; results already written are kept")
    return int(code) if isinstance(code, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
