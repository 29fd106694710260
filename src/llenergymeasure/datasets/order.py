"""The order prompts are sent in: interleaved, grouped by category, or shuffled."""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import zip_longest

from llenergymeasure.config.models import DatasetOrder
from llenergymeasure.datasets.base import Prompt
from llenergymeasure.errors import ConfigError

__all__ = ["order_prompts"]


def order_prompts(prompts: Sequence[Prompt], order: DatasetOrder, seed: int) -> list[Prompt]:
    """Return ``prompts`` in the requested order, as a new list.

    - ``interleaved``: round-robin across categories (first one prompt of each
      category, then the second of each, ...), so any prefix spans categories.
    - ``grouped``: every prompt of a category together; categories and the
      prompts inside each keep their first-appearance order.
    - ``shuffled``: ``random.Random(seed).shuffle`` of a copy; the same seed gives
      the same order.

    Categories are taken in the order they first appear in ``prompts``.
    """
    if order == "shuffled":
        shuffled = list(prompts)
        random.Random(seed).shuffle(shuffled)
        return shuffled
    groups = _by_category(prompts)
    if order == "grouped":
        return [prompt for group in groups for prompt in group]
    if order == "interleaved":
        rounds = zip_longest(*groups)
        return [prompt for round_ in rounds for prompt in round_ if prompt is not None]
    raise ConfigError(
        f"unknown prompt order {order!r}",
        hint="use one of: interleaved, grouped, shuffled",
    )


def _by_category(prompts: Sequence[Prompt]) -> list[list[Prompt]]:
    """Prompts split by category; dicts keep insertion order, so first appearance wins."""
    groups: dict[str, list[Prompt]] = {}
    for prompt in prompts:
        groups.setdefault(prompt.category, []).append(prompt)
    return list(groups.values())
