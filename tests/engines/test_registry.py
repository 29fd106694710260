"""The engine registry lists the test doubles only while testing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from llenergymeasure.engines.registry import ENGINES, engine_names, get_engine
from llenergymeasure.errors import EngineError

# Run in a fresh interpreter: this test process has imported llenergymeasure.testing.
_PROBE = (
    "import sys\n"
    "from llenergymeasure.engines.registry import engine_names, get_engine\n"
    "from llenergymeasure.errors import EngineError\n"
    "print(','.join(engine_names()))\n"
    "try:\n"
    "    get_engine('fake')\n"
    "except EngineError as e:\n"
    "    print('refused:', e.message, '|', e.hint)\n"
    "else:\n"
    "    print('loaded')\n"
)


def _probe(env_value: str | None, *, import_testing: bool = False) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "LLEM_TESTING"}
    if env_value is not None:
        env["LLEM_TESTING"] = env_value
    code = ("import llenergymeasure.testing\n" if import_testing else "") + _PROBE
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_a_user_process_has_no_fake_engine() -> None:
    names, outcome = _probe(None)
    assert names.split(",") == list(ENGINES)
    assert "fake" not in names
    assert outcome.startswith("refused: engine `fake` is not available")
    assert "a test double: set LLEM_TESTING=1 or import llenergymeasure.testing" in outcome


def test_llem_testing_registers_the_fake_engine() -> None:
    names, outcome = _probe("1")
    assert names.split(",")[-1] == "fake"
    assert outcome == "loaded"


def test_importing_the_testing_package_registers_the_fake_engine() -> None:
    names, outcome = _probe("0", import_testing=True)
    assert "fake" in names.split(",")
    assert outcome == "loaded"


def test_in_the_test_suite_the_fake_engine_loads() -> None:
    assert "fake" in engine_names()
    assert get_engine("fake").name == "fake"


def test_an_unknown_engine_is_refused_with_a_suggestion() -> None:
    with pytest.raises(EngineError, match="did you mean `vllm`"):
        get_engine("vlm")
