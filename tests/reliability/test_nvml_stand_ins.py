"""An NVML without one of its functions (an older pynvml or driver, an incomplete stand-in)
gives a labelled result or one clean pre-flight error naming what is missing; never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from h200_run import h200_config
from llenergymeasure import run_experiment
from llenergymeasure.errors import PreflightError
from llenergymeasure.testing.h200 import h200_nvml

CONFIG = h200_config(
    {
        "fake": {"token_latency_ms": 2},
        "task": {"dataset": {"n_prompts": 2}, "max_output_tokens": 4},
        "measurement": {
            "devices": ["cuda:0"],
            "min_window_s": 0.3,
            "sample_interval_ms": 50,
            "baseline": {"duration_s": 0.3, "spot_check_s": 0.3},
        },
    }
)
_NVML = h200_nvml()
FUNCTIONS = sorted(n for n in dir(_NVML) if n.startswith("nvml") and callable(getattr(_NVML, n)))
# without these NVML cannot be used at all: a CUDA run stops in pre-flight, saying why
ESSENTIAL = {"nvmlInit", "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex"}
# the figure's method and power source without each of these
LABELLED = {
    "nvmlDeviceGetTotalEnergyConsumption": ("integrated", "instant"),
    "nvmlDeviceGetFieldValues": ("counter", "averaged"),
}


@pytest.mark.parametrize("missing", FUNCTIONS)
def test_a_missing_nvml_function_never_crashes_a_run(
    missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path))
    nvml = h200_nvml(omit=[missing])
    if missing in ESSENTIAL:
        with pytest.raises(PreflightError) as caught:
            run_experiment(CONFIG, nvml=nvml)
        assert "NVML cannot measure it" in caught.value.message
        return
    result = run_experiment(CONFIG, nvml=nvml)
    (gpu,) = [d for d in result.energy.domains if d.domain == "gpu:0"]
    assert gpu.energy_j is not None and gpu.energy_j > 0
    assert (gpu.method, gpu.power_source) == LABELLED.get(missing, ("counter", "instant"))
    assert result.energy.method == gpu.method
