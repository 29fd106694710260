"""The model's context length, read from config.json or a GGUF header without loading it."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from llenergymeasure.engines.context import context_length, gguf_context_length
from llenergymeasure.engines.resolve import ResolvedModel, resolve_model


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def _gguf(path: Path, entries: list[tuple[str, int, bytes]]) -> Path:
    """A GGUF v3 header with ``entries`` of (key, value type, packed value)."""
    body = b"".join(_string(key) + struct.pack("<I", kind) + value for key, kind, value in entries)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(entries)) + body)
    return path


def test_gguf_context_length_skips_strings_and_arrays_before_it(tmp_path: Path) -> None:
    tokens = struct.pack("<IQ", 8, 3) + _string("a") + _string("bc") + _string("def")
    scores = struct.pack("<IQ", 6, 3) + struct.pack("<3f", 0.1, 0.2, 0.3)
    path = _gguf(
        tmp_path / "m.gguf",
        [
            ("general.architecture", 8, _string("llama")),
            ("tokenizer.ggml.tokens", 9, tokens),
            ("tokenizer.ggml.scores", 9, scores),
            ("general.file_type", 4, struct.pack("<I", 3)),
            ("llama.context_length", 4, struct.pack("<I", 4096)),
        ],
    )
    assert gguf_context_length(path) == 4096


def test_gguf_without_the_key_or_not_gguf_says_nothing(tmp_path: Path) -> None:
    assert gguf_context_length(_gguf(tmp_path / "a.gguf", [("x.y", 10, b"\0" * 8)])) is None
    other = tmp_path / "b.gguf"
    other.write_bytes(b"NOPE" + b"\0" * 32)
    assert gguf_context_length(other) is None


def test_truncated_gguf_is_unknown_not_an_error(tmp_path: Path) -> None:
    path = _gguf(tmp_path / "m.gguf", [("llama.context_length", 4, struct.pack("<I", 2048))])
    path.write_bytes(path.read_bytes()[:30])
    model = ResolvedModel(name="m", kind="gguf", path=path, label="m")
    assert context_length(model) is None


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"max_position_embeddings": 2048}, 2048),
        ({"n_positions": 1024}, 1024),
        ({"text_config": {"max_position_embeddings": 512}}, 512),
        ({"max_position_embeddings": True}, None),
        ({"hidden_size": 64}, None),
    ],
)
def test_folder_context_length_from_config_json(
    tmp_path: Path, config: dict[str, object], expected: int | None
) -> None:
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    model = ResolvedModel(name="m", kind="folder", path=tmp_path, label="m")
    assert context_length(model) == expected


def test_the_bundled_model_states_8192_tokens() -> None:
    assert context_length(resolve_model("smollm2-135m")) == 8192
