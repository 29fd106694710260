"""How many tokens a model on disk can attend to, read from its files without loading it.

A Hugging Face folder states it in ``config.json``; a GGUF file in its header metadata
(``<architecture>.context_length``). Pre-flight compares it with ``max_input_tokens +
max_output_tokens`` so that an impossible request fails before anything is loaded.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import BinaryIO

from llenergymeasure.engines.resolve import ResolvedModel

__all__ = ["context_length", "gguf_context_length"]

# Names Hugging Face configs use for the longest sequence, in order of preference.
_CONFIG_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")

# GGUF value types: fixed sizes, 8 = string, 9 = array.
_FIXED_SIZE = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_INT_FORMAT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 10: "<Q", 11: "<q"}
_STRING, _ARRAY = 8, 9
_MAX_KEYS = 100_000  # a corrupt header must not loop for ever


def context_length(model: ResolvedModel) -> int | None:
    """The model's context length in tokens, or None when its files do not say."""
    try:
        if model.is_gguf:
            return gguf_context_length(model.path)
        return _config_context_length(model.path / "config.json")
    except (OSError, ValueError, struct.error):
        return None


def _config_context_length(path: Path) -> int | None:
    config = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        return None
    text_config = config.get("text_config")  # multimodal configs nest the language model's
    for source in (config, text_config if isinstance(text_config, dict) else {}):
        for key in _CONFIG_KEYS:
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def gguf_context_length(path: Path) -> int | None:
    """``<arch>.context_length`` from a GGUF header; reads only the metadata."""
    with path.open("rb") as file:
        if file.read(4) != b"GGUF":
            return None
        (version,) = struct.unpack("<I", file.read(4))
        if version < 2:  # version 1 used 32-bit lengths; nothing current writes it
            return None
        _n_tensors, n_keys = struct.unpack("<QQ", file.read(16))
        for _ in range(min(n_keys, _MAX_KEYS)):
            key = _read_string(file)
            (value_type,) = struct.unpack("<I", file.read(4))
            if key.endswith(".context_length") and value_type in _INT_FORMAT:
                size = _FIXED_SIZE[value_type]
                (value,) = struct.unpack(_INT_FORMAT[value_type], file.read(size))
                return int(value) if value > 0 else None
            _skip_value(file, value_type)
    return None


def _read_string(file: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", file.read(8))
    return file.read(length).decode("utf-8", errors="replace")


def _skip_value(file: BinaryIO, value_type: int) -> None:
    if value_type in _FIXED_SIZE:
        file.seek(_FIXED_SIZE[value_type], 1)
    elif value_type == _STRING:
        (length,) = struct.unpack("<Q", file.read(8))
        file.seek(length, 1)
    elif value_type == _ARRAY:
        item_type, count = struct.unpack("<IQ", file.read(12))
        if item_type in _FIXED_SIZE:
            file.seek(_FIXED_SIZE[item_type] * count, 1)
        else:
            for _ in range(count):
                _skip_value(file, item_type)
    else:
        raise ValueError(f"unknown GGUF value type {value_type}")
