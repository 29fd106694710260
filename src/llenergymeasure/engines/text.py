"""Prompt text -> input ids, identically for every engine built on a Hugging Face tokenizer.

Truncation is applied to the prompt's own text so that the chat template's
markers survive: the whole model input (template included) is at most
``max_input_tokens`` tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llenergymeasure.errors import EngineError

if TYPE_CHECKING:
    from llenergymeasure.config.models import ExperimentConfig

__all__ = [
    "TokenizerText",
    "has_chat_template",
    "input_ids_for",
    "prompt_ids",
    "resolve_chat_template",
]


def has_chat_template(tokenizer: Any) -> bool:
    """Whether the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def resolve_chat_template(tokenizer: Any, wanted: bool | None) -> bool:
    """Whether to apply the chat template: ``task.chat_template``, or None = when there is one."""
    if wanted is None:
        return has_chat_template(tokenizer)
    if wanted and not has_chat_template(tokenizer):
        raise EngineError(
            "task.chat_template is true but the model has no chat template",
            hint="set task.chat_template: false (or leave it unset)",
        )
    return wanted


def _templated_ids(tokenizer: Any, text: str) -> list[int]:
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
    )
    if isinstance(rendered, Mapping):  # some versions return an encoding even when asked for text
        rendered = rendered["input_ids"]
    return list(tokenizer.encode(str(rendered), add_special_tokens=False))


def input_ids_for(
    tokenizer: Any, text: str, *, max_input_tokens: int, use_chat_template: bool
) -> list[int]:
    """Token ids of one prompt, chat-templated when asked, at most ``max_input_tokens`` long."""
    if not use_chat_template:
        return list(tokenizer.encode(text, add_special_tokens=True))[:max_input_tokens]
    overhead = len(_templated_ids(tokenizer, ""))
    budget = max_input_tokens - overhead
    if budget < 1:
        raise EngineError(
            f"task.max_input_tokens ({max_input_tokens}) leaves no room for the prompt: "
            f"the chat template alone takes {overhead} tokens",
            hint=f"raise task.max_input_tokens above {overhead} or set task.chat_template: false",
        )
    content = list(tokenizer.encode(text, add_special_tokens=False))
    if len(content) <= budget:
        return _templated_ids(tokenizer, text)
    # Decoding a cut token sequence and re-encoding can merge or split a token
    # at the edge, so shrink until the templated input fits.
    while budget >= 1:
        ids = _templated_ids(tokenizer, tokenizer.decode(content[:budget]))
        if len(ids) <= max_input_tokens:
            return ids
        budget -= len(ids) - max_input_tokens
    raise EngineError(f"could not truncate a prompt to {max_input_tokens} tokens")


def prompt_ids(
    tokenizer: Any, prompts: Sequence[str], *, max_input_tokens: int, use_chat_template: bool
) -> list[list[int]]:
    """:func:`input_ids_for` of every prompt: what each engine's ``prepare`` tokenises."""
    return [
        input_ids_for(
            tokenizer, text, max_input_tokens=max_input_tokens, use_chat_template=use_chat_template
        )
        for text in prompts
    ]


class TokenizerText:
    """``encode``, ``decode`` and prompt ids of a loaded model with a Hugging Face tokenizer.

    A base of the engines' loaded models. ``use_chat_template`` None applies the
    template as ``task.chat_template`` says (when unset: when the model has one).
    """

    def __init__(
        self, config: ExperimentConfig, tokenizer: Any, *, use_chat_template: bool | None = None
    ) -> None:
        self._config = config
        self._tokenizer = tokenizer
        if use_chat_template is None:
            use_chat_template = resolve_chat_template(tokenizer, config.task.chat_template)
        self._use_chat_template = use_chat_template

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids))

    def _prompt_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """Every prompt's ids, chat-templated as configured, within ``max_input_tokens``."""
        return prompt_ids(
            self._tokenizer,
            prompts,
            max_input_tokens=self._config.task.max_input_tokens,
            use_chat_template=self._use_chat_template,
        )
