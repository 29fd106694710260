"""order_prompts against hand-written expectations."""

from __future__ import annotations

import pytest

from llenergymeasure.datasets import Prompt, order_prompts
from llenergymeasure.errors import ConfigError


def _p(id_: str, category: str) -> Prompt:
    return Prompt(id=id_, text=f"text of {id_}", category=category, source="test")


# Categories first appear in the order x, y, z; x has three prompts, y two, z one.
PROMPTS = [_p("x1", "x"), _p("x2", "x"), _p("y1", "y"), _p("x3", "x"), _p("z1", "z"), _p("y2", "y")]


def _ids(prompts: list[Prompt]) -> list[str]:
    return [p.id for p in prompts]


def test_interleaved_is_round_robin_in_first_appearance_order() -> None:
    assert _ids(order_prompts(PROMPTS, "interleaved", seed=0)) == [
        "x1", "y1", "z1", "x2", "y2", "x3",
    ]  # fmt: skip


def test_grouped_keeps_categories_and_inner_order() -> None:
    assert _ids(order_prompts(PROMPTS, "grouped", seed=0)) == [
        "x1", "x2", "x3", "y1", "y2", "z1",
    ]  # fmt: skip


def test_interleaved_and_grouped_ignore_the_seed() -> None:
    for order in ("interleaved", "grouped"):
        assert order_prompts(PROMPTS, order, seed=1) == order_prompts(PROMPTS, order, seed=2)


def test_shuffled_is_deterministic_for_a_seed() -> None:
    many = [_p(f"p{i}", "c") for i in range(30)]
    first = order_prompts(many, "shuffled", seed=7)
    assert order_prompts(many, "shuffled", seed=7) == first
    assert sorted(_ids(first)) == sorted(_ids(many))
    assert first != many


def test_shuffled_differs_across_seeds() -> None:
    many = [_p(f"p{i}", "c") for i in range(30)]
    assert order_prompts(many, "shuffled", seed=1) != order_prompts(many, "shuffled", seed=2)


def test_input_is_not_mutated_and_a_new_list_is_returned() -> None:
    before = list(PROMPTS)
    for order in ("interleaved", "grouped", "shuffled"):
        result = order_prompts(PROMPTS, order, seed=3)
        assert result is not PROMPTS
    assert before == PROMPTS


def test_empty_input_gives_empty_output() -> None:
    for order in ("interleaved", "grouped", "shuffled"):
        assert order_prompts([], order, seed=0) == []


def test_unknown_order_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="random"):
        order_prompts(PROMPTS, "random", seed=0)  # type: ignore[arg-type]
