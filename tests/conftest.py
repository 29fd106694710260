"""Shared test fixtures: isolate every test from the user's own config."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _no_user_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point LLEM_USER_CONFIG at a file that does not exist, so defaults apply."""
    missing = tmp_path_factory.mktemp("user-config") / "config.yaml"
    monkeypatch.setenv("LLEM_USER_CONFIG", str(missing))


@pytest.fixture
def results_root(tmp_path: Path) -> Path:
    """A fresh folder for result files."""
    return tmp_path / "results"
