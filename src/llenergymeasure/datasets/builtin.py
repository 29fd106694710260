"""The built-in prompt set, packaged with llenergymeasure as ``data/builtin_prompts.jsonl``.

How the set was made: 241 original prompts written for this project (no text is
taken from a public dataset), tagged ``source: llenergymeasure-builtin-v1``. They
cover ten categories, listed in the file's order, which is the order ``interleaved``
cycles through: qa (33), reasoning (30), coding (30), summarisation (18), creative
(25), translation (20), extraction (25, classification and extraction), instruction
(22), conversation (25) and long-context (13, an original passage followed by
reading-comprehension questions).

Lengths, counted in whitespace-separated words: min 3, median 20, max 1,111;
117 prompts under 20 words, 16 over 300 and 6 over 900. The longest is about
1,400 tokens with the SmolLM2 tokenizer, so every prompt fits a 2,048-token
context with room to answer; with the default ``task.max_input_tokens`` of 256 the
engine truncates the long-context prompts.

Change the set by editing the JSONL and bumping the version in ``source``, so
results measured on different prompts are never compared as equal.
"""

from __future__ import annotations

from importlib import resources

from llenergymeasure.datasets.base import Prompt
from llenergymeasure.datasets.jsonl import parse_jsonl

__all__ = ["BUILTIN_NAME", "BUILTIN_SOURCE", "load_builtin"]

BUILTIN_NAME = "builtin"
BUILTIN_SOURCE = "llenergymeasure-builtin-v1"
_DATA_FILE = "builtin_prompts.jsonl"


def load_builtin() -> list[Prompt]:
    """The built-in prompts, in file order (grouped by category)."""
    # importlib.resources, not a path next to __file__: it also works from a zipped install.
    data = resources.files("llenergymeasure.datasets").joinpath("data", _DATA_FILE).read_bytes()
    return parse_jsonl(data, origin=f"built-in set {BUILTIN_NAME!r}", source=BUILTIN_SOURCE)
