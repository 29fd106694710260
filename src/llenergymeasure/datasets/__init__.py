"""Prompt sources: the built-in set, a user's JSONL file, or synthetic prompts.

:func:`load_prompts` is the one entry point the experiment uses; the other names
are exported for callers that build or reorder prompts themselves.
"""

from __future__ import annotations

import difflib

from llenergymeasure.config.models import DatasetConfig
from llenergymeasure.datasets.base import Prompt, TokenizerLike
from llenergymeasure.datasets.builtin import BUILTIN_NAME, load_builtin
from llenergymeasure.datasets.jsonl import load_jsonl
from llenergymeasure.datasets.order import order_prompts
from llenergymeasure.datasets.synthetic import synthetic_prompts
from llenergymeasure.errors import ConfigError

__all__ = ["Prompt", "TokenizerLike", "load_prompts", "order_prompts", "synthetic_prompts"]

SYNTHETIC_NAME = "synthetic"
_ACCEPTED = f"`{BUILTIN_NAME}`, `{SYNTHETIC_NAME}`, or a path to a .jsonl file"


def load_prompts(
    config: DatasetConfig, *, seed: int, tokenizer: TokenizerLike | None = None
) -> list[Prompt]:
    """The ``config.n_prompts`` prompts of ``config.source``, in ``config.order``.

    The whole source is ordered before the first ``n_prompts`` are taken, so a
    small interleaved sample still spans categories. ``seed`` drives ``shuffled``
    order and synthetic text; ``tokenizer`` is needed only for ``synthetic``.

    Raises:
        ConfigError: the source is unknown or unusable, or has fewer than
            ``n_prompts`` prompts.
    """
    available = _read_source(config, seed=seed, tokenizer=tokenizer)
    if len(available) < config.n_prompts:
        raise ConfigError(
            f"dataset `{config.source}` has {len(available)} prompts, fewer than "
            f"task.dataset.n_prompts={config.n_prompts}",
            hint=f"set task.dataset.n_prompts to {len(available)} or less, or use a larger dataset",
        )
    return order_prompts(available, config.order, seed)[: config.n_prompts]


def _read_source(
    config: DatasetConfig, *, seed: int, tokenizer: TokenizerLike | None
) -> list[Prompt]:
    source = config.source
    if source == BUILTIN_NAME:
        return load_builtin()
    if source == SYNTHETIC_NAME:
        if tokenizer is None:
            raise ConfigError(
                "`synthetic` prompts need the model's tokenizer to reach an exact token count",
                hint="pass tokenizer= to load_prompts (the engine's loaded model is one)",
            )
        if config.input_len is None:
            raise ConfigError(
                "`synthetic` prompts need `task.dataset.input_len` (tokens per prompt)"
            )
        return synthetic_prompts(config.n_prompts, config.input_len, tokenizer, seed)
    if source.lower().endswith(".jsonl"):
        return load_jsonl(source)
    raise _unknown_source(source)


def _unknown_source(source: str) -> ConfigError:
    near = difflib.get_close_matches(source.lower(), [BUILTIN_NAME, SYNTHETIC_NAME], n=1)
    if near:
        hint = f"did you mean `{near[0]}`?"
    else:
        hint = "prompt files must be JSON Lines with a .jsonl extension"
    return ConfigError(f"unknown dataset source `{source}`; expected {_ACCEPTED}", hint=hint)
