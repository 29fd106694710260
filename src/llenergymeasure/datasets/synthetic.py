"""Synthetic prompts of an exact token length, for controlled input-length sweeps."""

from __future__ import annotations

import random

from llenergymeasure.datasets.base import Prompt, TokenizerLike
from llenergymeasure.errors import ConfigError

__all__ = ["SYNTHETIC_CATEGORY", "SYNTHETIC_SOURCE", "synthetic_prompts"]

SYNTHETIC_CATEGORY = "synthetic"
SYNTHETIC_SOURCE = "synthetic"

# Common, mostly single-token English words: a prompt of real words tokenizes like
# ordinary text, unlike random ids, which can decode to byte soup that re-encodes longer.
_WORDS: tuple[str, ...] = (
    "about", "above", "across", "after", "again", "air", "all", "almost", "along", "also",
    "always", "animal", "answer", "any", "around", "ask", "away", "back", "base", "because",
    "been", "before", "began", "begin", "behind", "being", "below", "best", "better", "between",
    "big", "bird", "black", "blue", "boat", "body", "book", "both", "bring", "brought",
    "build", "built", "busy", "call", "came", "can", "car", "care", "carry", "cause",
    "center", "change", "check", "city", "class", "clear", "close", "cold", "color", "come",
    "common", "copy", "could", "country", "course", "cover", "cross", "cut", "dark", "day",
    "deep", "did", "different", "does", "done", "door", "down", "draw", "during", "each",
    "early", "earth", "east", "easy", "eat", "end", "enough", "even", "every", "example",
    "eye", "face", "fact", "fall", "family", "far", "farm", "fast", "father", "feel",
    "feet", "few", "field", "find", "fine", "fire", "first", "fish", "five", "food",
    "form", "found", "four", "free", "friend", "from", "front", "full", "game", "gave",
    "girl", "give", "go", "gold", "good", "great", "green", "ground", "group", "grow",
    "half", "hand", "happy", "hard", "have", "head", "hear", "heard", "heat", "help",
    "here", "high", "hill", "hold", "home", "horse", "hot", "hour", "house", "idea",
    "important", "inch", "island", "keep", "kind", "king", "knew", "know", "land", "large",
    "last", "late", "learn", "leave", "left", "less", "letter", "life", "light", "line",
    "list", "little", "live", "long", "look", "made", "main", "make", "man", "many",
    "map", "mark", "may", "mean", "measure", "might", "mile", "mind", "money", "moon",
    "more", "morning", "most", "mother", "mountain", "move", "much", "music", "must", "name",
    "near", "need", "never", "new", "next", "night", "north", "note", "nothing", "notice",
    "number", "object", "often", "old", "once", "only", "open", "order", "other", "over",
    "page", "paper", "part", "pass", "people", "picture", "piece", "place", "plain", "plan",
    "plant", "play", "point", "port", "power", "press", "problem", "product", "pull", "question",
    "quick", "rain", "reach", "read", "ready", "real", "record", "red", "remember", "rest",
    "river", "road", "rock", "room", "round", "rule", "run", "said", "same", "saw",
    "say", "school", "sea", "second", "see", "seem", "sentence", "serve", "set", "several",
    "shape", "ship", "short", "should", "show", "side", "simple", "since", "size", "small",
    "snow", "song", "soon", "sound", "south", "space", "special", "stand", "star", "start",
    "state", "stay", "step", "still", "stood", "story", "street", "strong", "study", "such",
    "sun", "sure", "surface", "table", "tail", "take", "talk", "teach", "tell", "test",
    "than", "their", "them", "then", "there", "these", "thing", "think", "those", "though",
    "thought", "three", "through", "time", "together", "told", "too", "took", "top", "toward",
    "town", "travel", "tree", "true", "try", "turn", "under", "until", "upon", "usual",
    "very", "voice", "wait", "walk", "want", "warm", "watch", "water", "weather", "week",
    "well", "went", "were", "west", "what", "wheel", "when", "where", "which", "while",
    "white", "whole", "wind", "window", "with", "wood", "word", "work", "world", "would",
    "write", "year", "yellow", "young",
)  # fmt: skip
# Fresh word draws per prompt before giving up; a tokenizer that cannot hit the
# length in this many draws will not hit it at all (e.g. it adds more special
# tokens than the target).
_MAX_DRAWS = 8
# How far from the expected token count the cut point is searched: decoding a cut
# and re-encoding it can merge or split tokens at the cut by a few positions.
_CUT_WINDOW = 8
# Rounds of adding words while the text is still shorter than needed.
_MAX_GROWTHS = 16


def synthetic_prompts(n: int, input_len: int, tokenizer: TokenizerLike, seed: int) -> list[Prompt]:
    """Build ``n`` prompts of random English words, each exactly ``input_len`` tokens.

    Exact means ``len(tokenizer.encode(prompt.text)) == input_len``. The same seed,
    length and tokenizer give the same prompts.

    Raises:
        ConfigError: ``n`` or ``input_len`` is out of range, or the tokenizer cannot
            produce a text of exactly ``input_len`` tokens.
    """
    if n < 0:
        raise ConfigError(f"synthetic prompt count must be >= 0, got {n}")
    if input_len < 1:
        raise ConfigError(
            f"synthetic prompts need input_len >= 1 token, got {input_len}",
            hint="set task.dataset.input_len to a positive number of tokens",
        )
    rng = random.Random(seed)
    # Tokens the tokenizer adds to any text (e.g. a BOS token); they count towards
    # input_len but must not be decoded into the prompt text.
    special = tokenizer.encode("")
    width = len(str(n))
    return [
        Prompt(
            id=f"synthetic-{i:0{width}d}",
            text=_exact_text(input_len, tokenizer, rng, special),
            category=SYNTHETIC_CATEGORY,
            source=SYNTHETIC_SOURCE,
        )
        for i in range(1, n + 1)
    ]


def _exact_text(
    target: int, tokenizer: TokenizerLike, rng: random.Random, special: list[int]
) -> str:
    """Text that encodes to exactly ``target`` tokens, from seeded random words."""
    n_content = target - len(special)
    if n_content < 1:
        raise _impossible(target, special)
    for _ in range(_MAX_DRAWS):
        ids = _content_ids(n_content + _CUT_WINDOW, tokenizer, rng, special)
        text = _cut_to_length(ids, n_content, target, tokenizer)
        if text is not None:
            return text
    raise _impossible(target, special)


def _impossible(target: int, special: list[int]) -> ConfigError:
    return ConfigError(
        f"could not build a synthetic prompt of exactly {target} tokens with this tokenizer",
        hint=(
            f"the tokenizer adds {len(special)} special token(s) to every text; "
            "try a different task.dataset.input_len"
        ),
    )


def _content_ids(
    at_least: int, tokenizer: TokenizerLike, rng: random.Random, special: list[int]
) -> list[int]:
    """Ids of random words, without the tokenizer's leading special tokens, >= ``at_least`` long."""
    words = [rng.choice(_WORDS) for _ in range(at_least)]
    ids: list[int] = []
    # Bounded: a tokenizer that truncates its input would never reach the count;
    # the caller then fails to cut an exact prompt and reports it.
    for _ in range(_MAX_GROWTHS):
        ids = tokenizer.encode(" ".join(words))
        if special and ids[: len(special)] == special:
            ids = ids[len(special) :]
        if len(ids) >= at_least:
            break
        words.extend(rng.choice(_WORDS) for _ in range(at_least - len(ids)))
    return ids


def _cut_to_length(
    ids: list[int], n_content: int, target: int, tokenizer: TokenizerLike
) -> str | None:
    """Decode prefixes of ``ids`` near ``n_content`` until one re-encodes to ``target`` tokens."""
    # Nearest cuts first: target, target-1, target+1, ...
    offsets = [0]
    for step in range(1, _CUT_WINDOW + 1):
        offsets += [-step, step]
    for offset in offsets:
        cut = n_content + offset
        if cut < 1 or cut > len(ids):
            continue
        decoded = tokenizer.decode(ids[:cut])
        # Prefer text without stray edge whitespace; keep the raw decode as a fallback
        # because stripping can drop a whitespace token the count relies on.
        for text in (decoded.strip(), decoded):
            if text.strip() and len(tokenizer.encode(text)) == target:
                return text
    return None
