"""Engines by name, imported only when asked for."""

from __future__ import annotations

import importlib
from typing import cast

from llenergymeasure.config.errors import did_you_mean
from llenergymeasure.engines.base import Engine
from llenergymeasure.errors import EngineError

__all__ = ["ENGINES", "get_engine"]

# name -> "module:Class"; the module is imported on first use, never at start-up.
ENGINES: dict[str, str] = {
    "transformers": "llenergymeasure.engines.transformers:TransformersEngine",
    "fake": "llenergymeasure.engines.fake:FakeEngine",
}


def get_engine(name: str) -> Engine:
    """An engine instance by name; EngineError (with a suggestion) for unknown names."""
    target = ENGINES.get(name)
    if target is None:
        raise EngineError(
            f"engine `{name}` is not available in this installation of llenergymeasure"
            + did_you_mean(name, list(ENGINES)),
            hint="available engines: " + ", ".join(sorted(ENGINES)),
        )
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    return cast(Engine, getattr(module, class_name)())
