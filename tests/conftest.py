"""Shared test fixtures: isolate every test from the user's own config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register the test doubles (the fake engine) in this process and every process it
    starts: study children, runners and `llem` subprocesses."""
    os.environ["LLEM_TESTING"] = "1"


@pytest.fixture(autouse=True)
def _no_user_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point LLEM_USER_CONFIG at an empty user config, so defaults apply."""
    empty = tmp_path_factory.mktemp("user-config") / "config.yaml"
    empty.write_text("{}\n", encoding="utf-8")
    monkeypatch.setenv("LLEM_USER_CONFIG", str(empty))


@pytest.fixture(autouse=True)
def _own_device_locks(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Device locks in a folder of this test's own, never the user's runtime directory."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))


@pytest.fixture
def results_root(tmp_path: Path) -> Path:
    """A fresh folder for result files."""
    return tmp_path / "results"


@pytest.fixture(scope="session")
def gpu_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished study folder: 3 configs x 2 cycles on a simulated GPU, run 1/c2 failed
    (built once per session, shared by the results and report tests).

    Tests must not modify it; copy what they change.
    """
    from gpu_study import make_gpu_study

    return make_gpu_study(tmp_path_factory.mktemp("gpu-study"))


# ------------------------------------------------------------------ skipped tests
# CI must not pass by skipping: every skip is listed at the end with its reason, and with
# `CI` set, a skip outside the tests that need hardware this kind of machine lacks fails
# the run.
_MAY_SKIP = frozenset({"gpu", "tensorrt"})
_SKIPPED: list[tuple[str, str, bool]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not report.skipped:
        return
    reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    allowed = bool(_MAY_SKIP & set(report.keywords))
    _SKIPPED.append((report.nodeid, reason.removeprefix("Skipped: "), allowed))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A whole module skipped at collection: never allowed, it hides every test in it."""
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        _SKIPPED.append((report.nodeid, str(reason).removeprefix("Skipped: "), False))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _SKIPPED:
        return
    terminalreporter.section("skipped tests")
    for nodeid, reason, allowed in _SKIPPED:
        mark = "allowed (needs hardware)" if allowed else "NOT ALLOWED in CI"
        terminalreporter.line(f"{nodeid}: {reason} [{mark}]")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") and any(not allowed for _, _, allowed in _SKIPPED) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
