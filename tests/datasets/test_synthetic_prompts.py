"""Synthetic prompts reach an exact token count with fake tokenizers and, if given, a real one."""

from __future__ import annotations

import os
import re

import pytest

from llenergymeasure.datasets import TokenizerLike, synthetic_prompts
from llenergymeasure.engines.model_files import ensure_converted
from llenergymeasure.engines.resolve import resolve_model
from llenergymeasure.errors import ConfigError


class WordTokenizer:
    """One token per whitespace-separated word; ids assigned on first sight."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._words: list[str] = []

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            if word not in self._ids:
                self._ids[word] = len(self._words)
                self._words.append(word)
            ids.append(self._ids[word])
        return ids

    def decode(self, ids: list[int]) -> str:
        return " ".join(self._words[i] for i in ids)


class CharTokenizer:
    """One token per character, spaces included."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids)


class ChunkTokenizer:
    """Like byte-level BPE: a leading space joins the next token, words split into 3-letter pieces.

    Cutting mid-word and re-encoding can change the count, which is what the
    cut search in synthetic_prompts has to cope with.
    """

    _PIECE = re.compile(r" ?[^ ]{1,3}| ")

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._pieces: list[str] = []

    def encode(self, text: str) -> list[int]:
        ids = []
        for piece in self._PIECE.findall(text):
            if piece not in self._ids:
                self._ids[piece] = len(self._pieces)
                self._pieces.append(piece)
            ids.append(self._ids[piece])
        return ids

    def decode(self, ids: list[int]) -> str:
        return "".join(self._pieces[i] for i in ids)


class BosTokenizer(WordTokenizer):
    """Adds a BOS token to every text and decodes it verbatim, as some adapters do."""

    BOS = -1

    def encode(self, text: str) -> list[int]:
        return [self.BOS, *super().encode(text)]

    def decode(self, ids: list[int]) -> str:
        return " ".join("<s>" if i == self.BOS else self._words[i] for i in ids)


class BosEosTokenizer(WordTokenizer):
    """Adds two special tokens, so fewer than three tokens are impossible."""

    def encode(self, text: str) -> list[int]:
        return [-1, *super().encode(text), -2]

    def decode(self, ids: list[int]) -> str:
        return " ".join(self._words[i] for i in ids if i >= 0)


FAKES = [WordTokenizer, CharTokenizer, ChunkTokenizer, BosTokenizer]
# A BOS-adding tokenizer cannot make a 1-token prompt with any text in it.
CASES = [
    (make, input_len)
    for make in FAKES
    for input_len in (1, 2, 3, 7, 16, 64, 255, 1000)
    if not (make is BosTokenizer and input_len == 1)
]


@pytest.mark.parametrize(("make", "input_len"), CASES, ids=[f"{m.__name__}-{n}" for m, n in CASES])
def test_every_prompt_has_exactly_input_len_tokens(
    make: type[TokenizerLike], input_len: int
) -> None:
    tokenizer = make()
    prompts = synthetic_prompts(5, input_len, tokenizer, seed=42)
    assert len(prompts) == 5
    for prompt in prompts:
        assert len(tokenizer.encode(prompt.text)) == input_len
        assert prompt.text.strip()


def test_special_tokens_are_not_decoded_into_the_text() -> None:
    tokenizer = BosTokenizer()
    for prompt in synthetic_prompts(3, 20, tokenizer, seed=0):
        assert "<s>" not in prompt.text
        assert len(tokenizer.encode(prompt.text)) == 20


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    first = synthetic_prompts(4, 32, WordTokenizer(), seed=1)
    assert synthetic_prompts(4, 32, WordTokenizer(), seed=1) == first
    assert synthetic_prompts(4, 32, WordTokenizer(), seed=2) != first
    assert len({p.text for p in first}) == 4


def test_ids_category_and_source() -> None:
    prompts = synthetic_prompts(12, 4, WordTokenizer(), seed=0)
    assert [p.id for p in prompts][:2] == ["synthetic-01", "synthetic-02"]
    assert prompts[-1].id == "synthetic-12"
    assert {p.category for p in prompts} == {"synthetic"}
    assert {p.source for p in prompts} == {"synthetic"}


def test_zero_prompts_is_an_empty_list() -> None:
    assert synthetic_prompts(0, 8, WordTokenizer(), seed=0) == []


@pytest.mark.parametrize(
    ("make", "input_len", "n_special"),
    [(BosTokenizer, 1, 1), (BosEosTokenizer, 1, 2), (BosEosTokenizer, 2, 2)],
)
def test_impossible_length_is_a_config_error(
    make: type[TokenizerLike], input_len: int, n_special: int
) -> None:
    with pytest.raises(ConfigError, match=f"exactly {input_len} tokens") as info:
        synthetic_prompts(1, input_len, make(), seed=0)
    assert info.value.hint is not None and f"{n_special} special token" in info.value.hint


def test_possible_length_with_two_special_tokens() -> None:
    tokenizer = BosEosTokenizer()
    [prompt] = synthetic_prompts(1, 3, tokenizer, seed=0)
    assert len(tokenizer.encode(prompt.text)) == 3


class TruncatingTokenizer(WordTokenizer):
    """Never returns more than 10 tokens, so longer prompts cannot be built."""

    def encode(self, text: str) -> list[int]:
        return super().encode(text)[:10]


def test_a_tokenizer_that_cannot_reach_the_length_fails_cleanly() -> None:
    with pytest.raises(ConfigError, match="exactly 50 tokens"):
        synthetic_prompts(1, 50, TruncatingTokenizer(), seed=0)


@pytest.mark.parametrize(("n", "input_len"), [(-1, 8), (1, 0), (1, -5)])
def test_out_of_range_arguments_are_config_errors(n: int, input_len: int) -> None:
    with pytest.raises(ConfigError):
        synthetic_prompts(n, input_len, WordTokenizer(), seed=0)


class _HFAdapter:
    """Counts tokens the way an engine adapter does: without the special tokens."""

    def __init__(self, tokenizer: object) -> None:
        self._tok = tokenizer

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))  # type: ignore[attr-defined]

    def decode(self, ids: list[int]) -> str:
        return str(self._tok.decode(ids))  # type: ignore[attr-defined]


@pytest.mark.model
def test_exact_length_with_a_real_tokenizer() -> None:
    """On the bundled model's tokenizer (from its converted cache), or the one
    ``$LLEM_TEST_TOKENIZER_DIR`` names."""
    import transformers

    folder = os.environ.get("LLEM_TEST_TOKENIZER_DIR") or str(
        ensure_converted(resolve_model("smollm2-135m"))
    )
    adapter = _HFAdapter(transformers.AutoTokenizer.from_pretrained(folder))
    for input_len in (1, 2, 5, 64, 256, 1024):
        prompts = synthetic_prompts(5, input_len, adapter, seed=42)
        assert [len(adapter.encode(p.text)) for p in prompts] == [input_len] * 5
