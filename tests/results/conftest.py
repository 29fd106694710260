"""The simulated-GPU study shared by the results tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpu_study import make_gpu_study


@pytest.fixture(scope="session")
def gpu_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished study folder: 3 configs x 2 cycles on a simulated GPU, run 1/c2 failed.

    Tests must not modify it; copy what they change.
    """
    return make_gpu_study(tmp_path_factory.mktemp("gpu-study"))
