"""Engines by name, imported only when asked for, and where each one runs.

An engine whose library pins its own torch and transformers (vLLM) lives in a
separate virtual environment; a *runner* is the Python interpreter of that
environment, and an experiment on that engine runs in a fresh process of it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from llenergymeasure.config.errors import did_you_mean
from llenergymeasure.engines.base import Engine
from llenergymeasure.errors import ConfigError, EngineError

__all__ = [
    "ENGINES",
    "ENVIRONMENT_TARGETS",
    "RUNNER_ENV_PREFIX",
    "TESTING_ENGINES",
    "TESTING_ENV",
    "Runner",
    "engine_names",
    "find_runner",
    "get_engine",
    "runner_venv_name",
    "testing_enabled",
]

# name -> "module:Class"; the module is imported on first use, never at start-up.
ENGINES: dict[str, str] = {
    "transformers": "llenergymeasure.engines.transformers:TransformersEngine",
    "vllm": "llenergymeasure.engines.vllm:VLLMEngine",
    "tensorrt": "llenergymeasure.engines.tensorrt:TensorRTEngine",
}
# Test doubles: registered only while testing (see `testing_enabled`), so that a
# measurement can never run on one by a typo, and `llem doctor` does not list them.
TESTING_ENGINES: dict[str, str] = {
    "fake": "llenergymeasure.testing.fake_engine:FakeEngine",
}
TESTING_ENV = "LLEM_TESTING"

# `$LLEM_RUNNER_VLLM=/path/to/python` names the runner of `vllm` for this shell.
RUNNER_ENV_PREFIX = "LLEM_RUNNER_"
# Engines whose environment the Makefile builds, and the command that builds it.
ENVIRONMENT_TARGETS: dict[str, str] = {"vllm": "make vllm-env"}


def testing_enabled() -> bool:
    """Whether the test doubles are registered: ``$LLEM_TESTING=1``, or
    ``llenergymeasure.testing`` imported in this process."""
    return os.environ.get(TESTING_ENV) == "1" or "llenergymeasure.testing" in sys.modules


def _registered() -> dict[str, str]:
    return {**ENGINES, **TESTING_ENGINES} if testing_enabled() else dict(ENGINES)


def engine_names() -> tuple[str, ...]:
    """The engines this process can be asked for, the test doubles only while testing."""
    return tuple(_registered())


def get_engine(name: str) -> Engine:
    """An engine instance by name; EngineError (with a suggestion) for unknown names."""
    registered = _registered()
    target = registered.get(name)
    if target is None:
        hint = "available engines: " + ", ".join(sorted(ENGINES))
        if name in TESTING_ENGINES:
            hint = (
                f"`{name}` is a test double: set {TESTING_ENV}=1 or import "
                "llenergymeasure.testing to use it"
            )
        raise EngineError(
            f"engine `{name}` is not available in this installation of llenergymeasure"
            + did_you_mean(name, list(registered)),
            hint=hint,
        )
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    return cast(Engine, getattr(module, class_name)())


@dataclass(frozen=True)
class Runner:
    """The interpreter that runs one engine's experiments, and who chose it."""

    engine: str
    python: Path
    source: str


def runner_venv_name(engine: str) -> str:
    """The folder `make` builds an engine's environment in, e.g. ``.venv-vllm``."""
    return f".venv-{engine}"


def find_runner(engine: str, configured: Mapping[str, str] | None = None) -> Runner | None:
    """The interpreter of another environment that should run ``engine``; None = this one.

    First the user config's ``runners`` (``configured``), then ``$LLEM_RUNNER_<ENGINE>``:
    both are used whenever they are set. Otherwise, and only when the engine's library is
    not importable here, ``.venv-<engine>/bin/python`` beside this environment (``make``
    builds ``.venv`` and ``.venv-vllm`` side by side). A runner that is named but missing
    is a ConfigError.
    """
    named = (configured or {}).get(engine)
    if named:
        return _checked(engine, named, f"user config `runners.{engine}`")
    env_name = RUNNER_ENV_PREFIX + engine.upper()
    from_env = os.environ.get(env_name)
    if from_env:
        return _checked(engine, from_env, f"${env_name}")
    if engine not in ENGINES or get_engine(engine).probe().available:
        return None
    # Beside the running environment: `.venv` and `.venv-vllm` in one project folder.
    python = Path(sys.prefix).absolute().parent / runner_venv_name(engine) / "bin" / "python"
    if python.is_file() and os.access(python, os.X_OK):
        return Runner(engine, python, "found beside this environment")
    return None


def _checked(engine: str, path: str, source: str) -> Runner:
    python = Path(path).expanduser().absolute()
    if not (python.is_file() and os.access(python, os.X_OK)):
        raise ConfigError(
            f"the runner of engine `{engine}` ({source}) is not an executable file: {python}",
            hint=f"build it with `{ENVIRONMENT_TARGETS[engine]}`, or fix the path"
            if engine in ENVIRONMENT_TARGETS
            else "fix the path",
        )
    return Runner(engine, python, source)
