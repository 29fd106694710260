"""The packaged prompt set: size, identity, categories and length spread."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources

from llenergymeasure.datasets import builtin
from llenergymeasure.datasets.builtin import BUILTIN_SOURCE, load_builtin


def _words(text: str) -> int:
    return len(text.split())


def test_has_at_least_200_prompts() -> None:
    assert len(load_builtin()) >= 200


def test_ids_and_texts_are_unique() -> None:
    prompts = load_builtin()
    assert len({p.id for p in prompts}) == len(prompts)
    assert len({p.text for p in prompts}) == len(prompts)


def test_every_prompt_has_text_category_and_the_set_source() -> None:
    for prompt in load_builtin():
        assert prompt.text.strip(), prompt.id
        assert prompt.category.strip(), prompt.id
        assert prompt.id.startswith(f"{prompt.category}-"), prompt.id
        assert prompt.source == BUILTIN_SOURCE


def test_covers_many_categories_none_tiny() -> None:
    counts = Counter(p.category for p in load_builtin())
    assert len(counts) >= 8
    assert min(counts.values()) >= 10


def test_file_records_carry_the_source_tag() -> None:
    data = resources.files("llenergymeasure.datasets").joinpath("data", "builtin_prompts.jsonl")
    records = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    assert {r["source"] for r in records} == {BUILTIN_SOURCE}
    assert all(set(r) == {"id", "category", "source", "prompt"} for r in records)


def test_lengths_span_short_to_about_1100_words() -> None:
    words = [_words(p.text) for p in load_builtin()]
    assert sum(w < 20 for w in words) >= 20
    assert sum(w > 300 for w in words) >= 15
    assert sum(w > 900 for w in words) >= 5
    # ~1,500 tokens: the longest prompt still fits a 2,048-token context.
    assert max(words) <= 1_150


def test_module_note_matches_the_data() -> None:
    prompts = load_builtin()
    words = [_words(p.text) for p in prompts]
    note = builtin.__doc__ or ""
    assert f"{len(prompts)} original prompts" in note
    assert f"{sum(w > 300 for w in words)} over 300" in note
    assert f"{sum(w > 900 for w in words)} over 900" in note
