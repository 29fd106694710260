"""The docs name what the code accepts, so they cannot drift silently."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from llenergymeasure.config.loading import UserConfig, load_experiment_config
from llenergymeasure.config.models import ExperimentConfig

ROOT = Path(__file__).resolve().parents[1]


def _paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        nested = [
            a
            for a in typing.get_args(field.annotation) or (field.annotation,)
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if nested:
            yield from _paths(nested[0], f"{prefix}{name}.")
        else:
            yield prefix + name


def test_every_config_field_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [p for p in _paths(ExperimentConfig) if f"`{p}`" not in text]
    assert missing == []


def test_readme_starts_with_the_two_commands_and_names_user_config_fields() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head = readme.split("```")[1]
    assert "make run" in head and "make test" in head
    for field in UserConfig.model_fields:
        assert field in readme


def test_bundled_example_loads() -> None:
    config = load_experiment_config(ROOT / "examples" / "experiment.yaml")
    assert config.transformers is not None and config.transformers.batch_size == 4
