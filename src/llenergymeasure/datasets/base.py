"""What every prompt source produces: :class:`Prompt`, and the tokenizer seam it may use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Prompt", "TokenizerLike"]


@dataclass(frozen=True)
class Prompt:
    """One prompt, with where it came from.

    ``id`` is unique within its source, ``category`` groups prompts for ordering,
    and ``source`` names the set or file the prompt was read from.
    """

    id: str
    text: str
    category: str
    source: str


class TokenizerLike(Protocol):
    """The two tokenizer calls synthetic prompts need.

    Structural, so an engine's loaded model satisfies it without importing this
    package; ``encode`` should count the tokens the engine will see.
    """

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""
        ...

    def decode(self, ids: list[int]) -> str:
        """Text of token ids."""
        ...
