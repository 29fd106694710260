"""Prompts from a user's JSON Lines file: one JSON object per line."""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.datasets.base import Prompt
from llenergymeasure.errors import ConfigError

__all__ = ["MAX_DATASET_BYTES", "TEXT_FIELDS", "load_jsonl", "parse_jsonl"]

# Searched in this order; the first that holds a non-empty string is the prompt.
# The later names cover common instruction-tuning and QA dumps without conversion.
TEXT_FIELDS: tuple[str, ...] = ("prompt", "text", "instruction", "input", "question")
DEFAULT_CATEGORY = "jsonl"
# Read whole into memory: far above any prompt set, far below what would exhaust a host.
MAX_DATASET_BYTES = 256 * 2**20
# Enough line numbers to find the problem, few enough to keep the message on a screen.
_N_LISTED_BAD_LINES = 5


@dataclass(frozen=True)
class _BadLine:
    number: int
    reason: str


def load_jsonl(path: str | Path) -> list[Prompt]:
    """Read prompts from a ``.jsonl`` file.

    Each non-blank line must be a JSON object whose text is in the first of
    :data:`TEXT_FIELDS` that holds a non-empty string. ``category`` defaults to
    ``"jsonl"``, ``id`` to ``"line-<n>"`` (1-based line number); ``source`` is the path.

    Raises:
        ConfigError: the path is missing, a directory, not a ``.jsonl`` file or
            unreadable; the file has no prompts; or some lines are unusable (all of
            them are reported in one error).
    """
    file = Path(path).expanduser()
    if file.suffix.lower() != ".jsonl":
        raise ConfigError(
            f"dataset path {str(file)!r} is not a .jsonl file",
            hint="task.dataset.source takes `builtin`, `synthetic`, or a path ending in .jsonl",
        )
    if file.is_dir():
        raise ConfigError(
            f"dataset path {str(file)!r} is a directory, not a .jsonl file",
            hint="point task.dataset.source at the file inside it",
        )
    if file.exists() and not file.is_file():
        # A FIFO or a device would block the read forever, or never end.
        raise ConfigError(
            f"dataset path {str(file)!r} is not a regular file",
            hint="point task.dataset.source at a .jsonl file",
        )
    try:
        if file.stat().st_size > MAX_DATASET_BYTES:
            raise ConfigError(
                f"dataset file {str(file)!r} is larger than {MAX_DATASET_BYTES // 2**20} MiB",
                hint="use a smaller file; n_prompts takes prompts from its start",
            )
        data = file.read_bytes()
    except FileNotFoundError as err:
        raise ConfigError(
            f"dataset file {str(file)!r} does not exist",
            hint="check the path; relative paths are resolved from the current directory",
        ) from err
    except OSError as err:
        raise ConfigError(f"cannot read dataset file {str(file)!r}: {err.strerror or err}") from err
    return parse_jsonl(data, origin=str(file), source=str(file))


def parse_jsonl(data: bytes, *, origin: str, source: str) -> list[Prompt]:
    """Parse JSON Lines bytes into prompts; ``origin`` names the data in error messages.

    Blank lines are skipped. Every unusable line is collected and reported in one
    :class:`ConfigError`, so a user fixes the file in one pass.
    """
    # Editors on Windows often save UTF-8 with a byte-order mark; it is not part of the JSON.
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    prompts: list[Prompt] = []
    bad: list[_BadLine] = []
    # Split the bytes, not decoded text, so a non-UTF-8 line is reported by its number.
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        parsed = _parse_line(raw, number=number, source=source)
        if isinstance(parsed, _BadLine):
            bad.append(parsed)
        else:
            prompts.append(parsed)
    if bad:
        raise _bad_lines_error(origin, bad)
    if not prompts:
        raise ConfigError(
            f"dataset file {origin!r} has no prompts",
            hint='add one JSON object per line, e.g. {"prompt": "Explain photosynthesis."}',
        )
    return prompts


def _parse_line(raw: bytes, *, number: int, source: str) -> Prompt | _BadLine:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _BadLine(number, "not UTF-8")
    try:
        record = json.loads(line)
    # RecursionError: deeply nested arrays in garbage input exhaust the parser's stack.
    except (ValueError, RecursionError):
        return _BadLine(number, "invalid JSON")
    if not isinstance(record, dict):
        return _BadLine(number, "not a JSON object")
    text = _first_text(record)
    if text is None:
        return _BadLine(number, "no text field")
    category = record.get("category")
    return Prompt(
        id=_prompt_id(record.get("id"), number),
        text=text,
        category=category if isinstance(category, str) and category.strip() else DEFAULT_CATEGORY,
        source=source,
    )


def _first_text(record: dict[str, object]) -> str | None:
    for field in TEXT_FIELDS:
        value = record.get(field)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _prompt_id(raw_id: object, number: int) -> str:
    # bool is an int subclass, and `true` is not a meaningful id.
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or str(raw_id) == "":
        return f"line-{number}"
    return str(raw_id)


def _bad_lines_error(origin: str, bad: list[_BadLine]) -> ConfigError:
    listed = ", ".join(f"line {b.number} ({b.reason})" for b in bad[:_N_LISTED_BAD_LINES])
    more = len(bad) - _N_LISTED_BAD_LINES
    if more > 0:
        listed += f" and {more} more"
    noun = "line" if len(bad) == 1 else "lines"
    return ConfigError(
        f"dataset file {origin!r} has {len(bad)} unusable {noun}: {listed}",
        hint=(
            "each line must be a UTF-8 JSON object with a non-empty string in one of: "
            + ", ".join(TEXT_FIELDS)
        ),
    )
