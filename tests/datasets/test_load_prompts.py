"""load_prompts: source selection, order before truncation, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import llenergymeasure.datasets as datasets
from llenergymeasure.config.models import DatasetConfig
from llenergymeasure.datasets import load_prompts
from llenergymeasure.datasets.builtin import load_builtin
from llenergymeasure.errors import ConfigError


class WordTokenizer:
    """One token per word; ids are word lengths, enough to count tokens."""

    def encode(self, text: str) -> list[int]:
        return [len(word) for word in text.split()]

    def decode(self, ids: list[int]) -> str:
        return " ".join("x" * n for n in ids)


def test_public_names() -> None:
    assert sorted(datasets.__all__) == [
        "Prompt",
        "TokenizerLike",
        "load_prompts",
        "order_prompts",
        "synthetic_prompts",
    ]


def test_builtin_default_order_interleaves_categories_before_taking_n() -> None:
    n_categories = len({p.category for p in load_builtin()})
    prompts = load_prompts(DatasetConfig(n_prompts=2 * n_categories), seed=0)
    assert len(prompts) == 2 * n_categories
    first_round = [p.category for p in prompts[:n_categories]]
    assert len(set(first_round)) == n_categories
    assert [p.category for p in prompts[n_categories:]] == first_round


def test_grouped_takes_the_first_category_first() -> None:
    builtin = load_builtin()
    prompts = load_prompts(DatasetConfig(n_prompts=5, order="grouped"), seed=0)
    assert prompts == builtin[:5]


def test_shuffled_follows_the_seed() -> None:
    config = DatasetConfig(n_prompts=20, order="shuffled")
    first = load_prompts(config, seed=3)
    assert load_prompts(config, seed=3) == first
    assert load_prompts(config, seed=4) != first


def test_too_few_prompts_names_both_counts() -> None:
    available = len(load_builtin())
    with pytest.raises(ConfigError) as info:
        load_prompts(DatasetConfig(n_prompts=1000), seed=0)
    assert info.value.message == (
        f"dataset `builtin` has {available} prompts, fewer than task.dataset.n_prompts=1000"
    )
    assert info.value.hint is not None and str(available) in info.value.hint


def test_jsonl_path_source(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    records = [{"prompt": f"p{i}", "category": "ab"[i % 2]} for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    prompts = load_prompts(DatasetConfig(source=str(path), n_prompts=4), seed=0)
    assert [p.text for p in prompts] == ["p0", "p1", "p2", "p3"]
    with pytest.raises(ConfigError, match=r"has 6 prompts, fewer than task\.dataset\.n_prompts=7"):
        load_prompts(DatasetConfig(source=str(path), n_prompts=7), seed=0)


def test_missing_jsonl_path_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.jsonl"
    with pytest.raises(ConfigError, match="does not exist"):
        load_prompts(DatasetConfig(source=str(path)), seed=0)


def test_synthetic_source_uses_the_tokenizer() -> None:
    config = DatasetConfig(source="synthetic", input_len=12, n_prompts=6)
    tokenizer = WordTokenizer()
    prompts = load_prompts(config, seed=5, tokenizer=tokenizer)
    assert len(prompts) == 6
    assert {len(tokenizer.encode(p.text)) for p in prompts} == {12}


def test_synthetic_without_a_tokenizer_is_a_config_error() -> None:
    config = DatasetConfig(source="synthetic", input_len=12, n_prompts=6)
    with pytest.raises(ConfigError, match="tokenizer"):
        load_prompts(config, seed=5)


@pytest.mark.parametrize(
    ("source", "suggestion"),
    [("bulitin", "builtin"), ("Builtin", "builtin"), ("synthetc", "synthetic")],
)
def test_near_miss_source_suggests_the_name(source: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_prompts(DatasetConfig(source=source), seed=0)
    assert f"unknown dataset source `{source}`" in info.value.message
    assert info.value.hint == f"did you mean `{suggestion}`?"


@pytest.mark.parametrize("source", ["prompts.json", "/data/prompts.csv", "alpaca"])
def test_unknown_source_lists_the_accepted_forms(source: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_prompts(DatasetConfig(source=source), seed=0)
    message = info.value.message
    assert "`builtin`" in message and "`synthetic`" in message and ".jsonl" in message
    assert info.value.hint is not None and "did you mean" not in info.value.hint


def test_importing_datasets_stays_light() -> None:
    code = (
        "import sys, llenergymeasure.datasets\n"
        "heavy = {'torch', 'transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
