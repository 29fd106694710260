"""Steps 4 and 5: load the model, then build the prompts and tokenise them."""

from __future__ import annotations

from dataclasses import dataclass

from llenergymeasure.datasets import load_prompts
from llenergymeasure.engines.base import LoadedModel, PreparedPrompts
from llenergymeasure.experiment.preflight import Plan

__all__ = ["PreparedWorkload", "load_model", "prepare_prompts"]


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
    texts = [p.text for p in prompts]
    # Warm up on one batch of the same workload, so shapes and code paths match the window.
    return PreparedWorkload(
        ids=tuple(p.id for p in prompts),
        prepared=model.prepare(texts),
        warmup=model.prepare(texts[: config.batch_size]),
    )
