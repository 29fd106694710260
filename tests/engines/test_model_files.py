"""The model-file helpers every engine shares, each on a small hand-made folder."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

from llenergymeasure.engines.model_files import (
    count_params,
    dist_version,
    dtype_bytes,
    eos_ids,
    hf_folder,
    importable,
    safetensors_shapes,
    stop_ids,
    weights_mib,
)


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A safetensors file with the given header; the data section is zeros of the right size."""
    width = {"F32": 4, "BF16": 2, "F16": 2}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = width[dtype]
        for dim in shape:
            n *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    _write_safetensors(
        tmp_path / "model-00001-of-00002.safetensors",
        {"model.embed_tokens.weight": ("BF16", [100, 8]), "model.norm.weight": ("BF16", [8])},
    )
    _write_safetensors(
        tmp_path / "model-00002-of-00002.safetensors",
        {"model.layers.0.mlp.up_proj.weight": ("BF16", [16, 8])},
    )
    return tmp_path


def test_safetensors_shapes_reads_every_file_header(folder: Path) -> None:
    assert safetensors_shapes(folder) == {
        "model.embed_tokens.weight": ("BF16", [100, 8]),
        "model.norm.weight": ("BF16", [8]),
        "model.layers.0.mlp.up_proj.weight": ("BF16", [16, 8]),
    }


def test_count_params_separates_the_embedding(folder: Path) -> None:
    assert count_params(folder) == (800 + 8 + 128, 8 + 128)


def test_count_params_is_none_without_weights_or_with_a_broken_header(tmp_path: Path) -> None:
    assert count_params(tmp_path) == (None, None)
    (tmp_path / "broken.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{nope")
    assert count_params(tmp_path) == (None, None)


def test_weights_mib_is_parameters_times_width(folder: Path) -> None:
    assert weights_mib(folder, "torch.bfloat16") == pytest.approx(936 * 2 / 2**20)
    assert weights_mib(folder, "float32") == pytest.approx(936 * 4 / 2**20)
    assert weights_mib(folder, "int4") is None


def test_dtype_bytes_knows_float_widths_with_or_without_torch_prefix() -> None:
    assert dtype_bytes("bfloat16") == 2
    assert dtype_bytes("torch.float32") == 4
    assert dtype_bytes("int8") is None and dtype_bytes(None) is None


def test_importable_looks_without_importing() -> None:
    assert importable("json")
    assert not importable("llenergymeasure_no_such_module")
    assert not importable("json.no_such_submodule")


def test_eos_ids_prefers_the_generation_config(tmp_path: Path) -> None:
    tokenizer = SimpleNamespace(eos_token_id=2)
    assert eos_ids(tmp_path, tokenizer) == [2]
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 7]}))
    assert eos_ids(tmp_path, tokenizer) == [2, 7]
    (tmp_path / "generation_config.json").write_text("{not json")
    assert eos_ids(tmp_path, tokenizer) == [2]


def test_stop_ids_takes_one_id_a_list_or_the_tokenizers() -> None:
    assert stop_ids(5, None) == [5]
    assert stop_ids((5, 6), None) == [5, 6]
    assert stop_ids(None, SimpleNamespace(eos_token_id=3)) == [3]
    assert stop_ids(None, SimpleNamespace(eos_token_id=None)) == []


def test_dist_version_takes_the_first_installed() -> None:
    assert dist_version("no-such-distribution-xyz") is None
    assert dist_version("no-such-distribution-xyz", "pydantic") == __import__("pydantic").VERSION


@pytest.mark.model
def test_ensure_converted_makes_the_bundled_gguf_a_safetensors_folder_once() -> None:
    from llenergymeasure.engines.model_files import ensure_converted
    from llenergymeasure.engines.resolve import resolve_model

    model = resolve_model("smollm2-135m")
    folder = ensure_converted(model)
    # the cache is shared by every checkout: it names the GGUF it was converted from
    converted_from = Path((folder / "CONVERTED_FROM").read_text(encoding="utf-8").strip())
    assert converted_from.name == model.path.name
    assert count_params(folder)[0] == pytest.approx(134.5e6, rel=0.01)
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert ensure_converted(model) == folder  # the cache is reused, not rewritten
    assert (folder / "config.json").stat().st_mtime_ns == stamp


def test_hf_folder_is_a_model_folder_itself_with_nothing_to_note(tmp_path: Path) -> None:
    from llenergymeasure.engines.resolve import ResolvedModel

    model = ResolvedModel("local", "folder", tmp_path, str(tmp_path))
    assert hf_folder(model) == (tmp_path, [])


@pytest.mark.model
def test_hf_folder_of_a_gguf_is_its_converted_cache_and_says_so() -> None:
    from llenergymeasure.engines.model_files import ensure_converted
    from llenergymeasure.engines.resolve import resolve_model

    model = resolve_model("smollm2-135m")
    folder, notes = hf_folder(model)
    assert folder == ensure_converted(model) != model.path
    assert notes == [f"weights dequantised from {model.path.name} to a safetensors cache"]
