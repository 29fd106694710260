"""A typer command group with the settings every llem group shares."""

from __future__ import annotations

import typer

__all__ = ["command_group"]


def command_group(name: str, help_text: str) -> typer.Typer:
    """A group that shows its help when called bare, with no shell completion and plain errors.

    Tracebacks stay off because ``main`` turns every LlemError into one ``error:`` line.
    """
    return typer.Typer(
        name=name,
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
