"""User JSONL files: field fallback, defaults, and every unusable input as a ConfigError."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from llenergymeasure.datasets.jsonl import load_jsonl
from llenergymeasure.errors import ConfigError


def _write_lines(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"prompt": "P", "text": "T", "instruction": "I", "input": "N", "question": "Q"}, "P"),
        ({"text": "T", "instruction": "I", "input": "N", "question": "Q"}, "T"),
        ({"instruction": "I", "input": "N", "question": "Q"}, "I"),
        ({"input": "N", "question": "Q"}, "N"),
        ({"question": "Q"}, "Q"),
        # Present but unusable fields are skipped, not taken.
        ({"prompt": "", "text": "T"}, "T"),
        ({"prompt": "   ", "question": "Q"}, "Q"),
        ({"prompt": 5, "instruction": "I"}, "I"),
        ({"prompt": None, "text": ["x"], "input": "N"}, "N"),
    ],
)
def test_text_comes_from_the_first_usable_field(
    tmp_path: Path, record: dict[str, object], expected: str
) -> None:
    [prompt] = load_jsonl(_write_lines(tmp_path / "p.jsonl", [record]))
    assert prompt.text == expected


def test_id_category_and_source_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"prompt": "a", "id": "first", "category": "math"}\n'
        "\n"
        '{"prompt": "b", "id": 7}\n'
        '{"prompt": "c", "id": true, "category": ""}\n',
        encoding="utf-8",
    )
    prompts = load_jsonl(path)
    assert [(p.id, p.category) for p in prompts] == [
        ("first", "math"),
        ("7", "jsonl"),
        # Line numbers count blank lines, so they match what an editor shows.
        ("line-4", "jsonl"),
    ]
    assert {p.source for p in prompts} == {str(path)}


def test_blank_lines_crlf_and_byte_order_mark_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "caf\xc3\xa9"}\r\n\r\n  \n{"text": "b"}\r\n')
    assert [p.text for p in load_jsonl(path)] == ["café", "b"]


def test_bad_lines_are_reported_together_with_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"prompt": "fine"}\n'
        b'{"prompt": "unterminated\n'
        b'{"prompt": "fine too"}\n'
        b'["a", "list"]\n'
        b'{"answer": "no text field"}\n'
        b"\n"
        b'{"prompt": "\xff\xfe latin"}\n'
    )
    with pytest.raises(ConfigError) as info:
        load_jsonl(path)
    message = info.value.message
    assert str(path) in message
    assert "4 unusable lines" in message
    for fragment in (
        "line 2 (invalid JSON)",
        "line 4 (not a JSON object)",
        "line 5 (no text field)",
        "line 7 (not UTF-8)",
    ):
        assert fragment in message
    assert "line 1 " not in message and "line 3 " not in message
    assert info.value.hint is not None and "prompt" in info.value.hint


def test_many_bad_lines_list_the_first_few_then_a_count(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(f"not json {i}" for i in range(12)) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_jsonl(path)
    message = info.value.message
    assert "12 unusable lines" in message
    assert "line 5 (invalid JSON)" in message
    assert "line 6 " not in message
    assert message.endswith("and 7 more")


@pytest.mark.parametrize("content", [b"", b"\n\n   \n\t\n"])
def test_a_file_without_prompts_is_an_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="has no prompts") as info:
        load_jsonl(path)
    assert str(path) in info.value.message


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "prompts.jsonl"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_jsonl(path)
    assert str(path) in info.value.message


@pytest.mark.parametrize("name", ["prompts.jsonl", "prompts"])
def test_a_directory_is_an_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.mkdir()
    with pytest.raises(ConfigError) as info:
        load_jsonl(path)
    assert str(path) in info.value.message


@pytest.mark.parametrize("name", ["prompts.json", "prompts.txt", "prompts.jsonl.gz"])
def test_a_file_not_ending_in_jsonl_is_an_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text('{"prompt": "a"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not a \.jsonl file") as info:
        load_jsonl(path)
    assert str(path) in info.value.message


@pytest.mark.parametrize(
    "content",
    [
        pytest.param('{"prompt": "café crème"}\n'.encode("latin-1"), id="latin-1"),
        pytest.param('{"prompt": "hello"}\n'.encode("utf-16"), id="utf-16"),
        pytest.param(random.Random(0).randbytes(8192), id="random-bytes"),
        pytest.param(b"\x00" * 100, id="nul-bytes"),
        pytest.param(b"[" * 200_000, id="deep-nesting"),
        pytest.param(b'{"prompt": "a"' + b"\x89PNG\r\n\x1a\n" * 50, id="binary-tail"),
    ],
)
def test_undecodable_or_garbage_content_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(content)
    # pytest.raises(ConfigError) fails the test on any other exception type.
    with pytest.raises(ConfigError) as info:
        load_jsonl(path)
    assert str(path) in info.value.message
