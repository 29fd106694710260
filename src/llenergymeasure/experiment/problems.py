"""Pre-flight's collector: every problem found, so that one PreflightError lists them all."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from llenergymeasure.errors import LlemError, PreflightError

__all__ = ["Problems"]

_T = TypeVar("_T")


class Problems:
    """Collects every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.hints: list[str] = []

    def attempt(self, check: Callable[[], _T]) -> _T | None:
        """``check()``, or None with its error noted when it raises an LlemError."""
        try:
            return check()
        except LlemError as err:
            self.messages.append(err.message)
            if err.hint:
                self.hints.append(err.hint)
            return None

    def error(self, fallback: str) -> PreflightError:
        """One PreflightError listing every problem (``fallback`` when none was noted)."""
        return PreflightError(
            self.messages or [fallback], hint=self.hints[0] if self.hints else None
        )
