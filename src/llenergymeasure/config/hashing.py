"""The identity of a resolved config: ``measurement_config_hash``."""

from __future__ import annotations

import hashlib
import json

from llenergymeasure.config.models import ExperimentConfig

__all__ = ["canonical_json", "measurement_config_hash"]


def canonical_json(config: ExperimentConfig) -> str:
    """The resolved config as JSON with sorted keys and no whitespace.

    An offline config leaves out ``mode`` and ``serving``, so that it hashes as it did
    before serving mode existed and studies started then still resume.
    """
    data = config.model_dump(mode="json")
    if config.mode == "offline":
        data.pop("mode", None)
        data.pop("serving", None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def measurement_config_hash(config: ExperimentConfig) -> str:
    """First 16 hex digits of SHA-256 over the canonical JSON of the resolved config.

    It names result folders and identifies a run for resume, so it must not
    depend on key order or on how the config was written (file, flags, kwargs).
    """
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:16]
