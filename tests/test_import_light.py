"""Importing llenergymeasure and running `llem --help` stay light; the public API is exact.

Each check runs in a fresh interpreter: the test process itself may already hold
heavy modules that other tests imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import llenergymeasure

HEAVY = ("torch", "transformers", "vllm", "pynvml", "tensorrt_llm")

PUBLIC_API = [
    "ConfigError",
    "EnergyError",
    "EngineError",
    "ExperimentConfig",
    "ExperimentResult",
    "LlemError",
    "PreflightError",
    "ResultError",
    "ServerError",
    "StudyError",
    "StudyOutcome",
    "__version__",
    "load_experiment_config",
    "load_result",
    "measurement_config_hash",
    "run_experiment",
    "run_study",
]

# Prints, as JSON on stdout, which heavy top-level modules the snippet left imported.
_REPORT = f"import json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"


def _heavy_after(snippet: str, cwd: Path) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", snippet + "\n" + _REPORT],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    heavy: list[str] = json.loads(proc.stdout.splitlines()[-1])
    return heavy


def test_importing_the_package_imports_no_engine_or_vendor_library(tmp_path: Path) -> None:
    assert _heavy_after("import llenergymeasure", tmp_path) == []


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["run", "--help"], ["--version"]],
    ids=["help", "run-help", "version"],
)
def test_cli_help_imports_no_engine_or_vendor_library(tmp_path: Path, argv: list[str]) -> None:
    snippet = (
        "import contextlib, io\n"
        "from llenergymeasure.cli.app import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as shown:\n"
        f"    rc = main({argv!r})\n"
        "assert rc == 0, rc\n"
        "assert shown.getvalue().strip(), 'nothing was printed'\n"
    )
    assert _heavy_after(snippet, tmp_path) == []


def test_module_entry_point_help_imports_no_heavy_module(tmp_path: Path) -> None:
    """`python -m llenergymeasure --help`, as run from a shell, checked with -X importtime."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "llenergymeasure", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage: llem" in proc.stdout
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "llenergymeasure" in imported  # the parse found the package's own imports
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))


def test_a_fake_engine_run_imports_no_heavy_module(tmp_path: Path) -> None:
    """The fake engine is the no-weights path: it must not pull torch in by accident.

    A run does read NVML (pure Python, no CUDA context) for the GPUs in the environment
    snapshot; that is the only vendor module it may import.
    """
    snippet = (
        "import contextlib, io\n"
        "from llenergymeasure.cli.app import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = main(['run', '--engine', 'fake', '-n', '2', '--max-output-tokens', '2',\n"
        "               '--quiet', '--output', 'out'])\n"
        "assert rc == 0, rc\n"
    )
    assert _heavy_after(snippet, tmp_path) in ([], ["pynvml"])
    assert list((tmp_path / "out").glob("*/001_c1_*/result.json"))


def test_public_api_is_exactly_the_documented_set() -> None:
    assert sorted(llenergymeasure.__all__) == PUBLIC_API
    assert len(llenergymeasure.__all__) == len(set(llenergymeasure.__all__))


@pytest.mark.parametrize("name", PUBLIC_API)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(llenergymeasure, name)
    assert value is not None
    if name == "__version__":
        assert isinstance(value, str)
        assert value
    elif name.endswith("Error"):
        assert isinstance(value, type)
        assert issubclass(value, llenergymeasure.LlemError)
    else:
        assert callable(value)
