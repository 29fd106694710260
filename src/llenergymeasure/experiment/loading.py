"""Steps 4 and 5: load the model, then build the prompts and tokenise them.

The warm-up batch is drawn from the same source as the window's prompts, but from
prompts the window does not send (the next ones in order, or for synthetic prompts
another seed's): an engine with a prefix cache (vLLM's) would otherwise serve the
window's first batch from what warm-up left behind. A source with no prompts to spare
gives its measured prompts with their words in reverse order: the same length, a
different start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.datasets import Prompt, TokenizerLike, load_prompts
from llenergymeasure.engines.base import LoadedModel, PreparedPrompts
from llenergymeasure.errors import ConfigError
from llenergymeasure.experiment.preflight import Plan

__all__ = ["PreparedWorkload", "load_model", "prepare_prompts", "warmup_texts"]


@dataclass(frozen=True)
class PreparedWorkload:
    """The window's prompts and the warm-up batch, both tokenised."""

    ids: tuple[str, ...]
    prepared: PreparedPrompts
    warmup: PreparedPrompts


def load_model(plan: Plan) -> LoadedModel:
    """Load the model with the engine that pre-flight checked."""
    return plan.engine.load(plan.config, plan.model)


def prepare_prompts(plan: Plan, model: LoadedModel) -> PreparedWorkload:
    """Prompts in configured order, tokenised and batched (synthetic ones need the tokenizer)."""
    config = plan.config
    prompts = plan.prompts
    if prompts is None:
        prompts = load_prompts(config.task.dataset, seed=config.task.random_seed, tokenizer=model)
    return PreparedWorkload(
        ids=tuple(p.id for p in prompts),
        prepared=model.prepare([p.text for p in prompts]),
        warmup=model.prepare(warmup_texts(config, prompts, model)),
    )


def warmup_texts(
    config: ExperimentConfig, measured: Sequence[Prompt], tokenizer: TokenizerLike
) -> list[str]:
    """One batch of prompts like the window's, none of them one the window sends."""
    wanted = config.batch_size
    dataset = config.task.dataset
    taken = {p.text for p in measured}
    synthetic = dataset.source == "synthetic"
    n_more = wanted if synthetic else dataset.n_prompts + wanted
    more = dataset.model_copy(update={"n_prompts": n_more})
    seed = config.task.random_seed + (1 if synthetic else 0)
    try:
        spare = load_prompts(more, seed=seed, tokenizer=tokenizer)
    except ConfigError:  # a source with no prompts to spare
        spare = []
    texts = [p.text for p in spare[0 if synthetic else dataset.n_prompts :] if p.text not in taken]
    for prompt in measured:
        if len(texts) >= wanted:
            break
        texts.append(_reversed(prompt.text, taken))
    return texts[:wanted]


def _reversed(text: str, taken: set[str]) -> str:
    flipped = " ".join(reversed(text.split()))
    return flipped if flipped not in taken else f"Warm-up request: {text}"
