"""Shared test fixtures: isolate every test from the user's own config."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _no_user_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point LLEM_USER_CONFIG at an empty user config, so defaults apply."""
    empty = tmp_path_factory.mktemp("user-config") / "config.yaml"
    empty.write_text("{}\n", encoding="utf-8")
    monkeypatch.setenv("LLEM_USER_CONFIG", str(empty))


@pytest.fixture
def results_root(tmp_path: Path) -> Path:
    """A fresh folder for result files."""
    return tmp_path / "results"
