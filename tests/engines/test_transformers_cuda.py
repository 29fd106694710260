"""The transformers engine on a CUDA GPU (run by scripts/gpu-check.sh; skipped without one)."""

from __future__ import annotations

import pytest

from llenergymeasure import ExperimentConfig, run_experiment


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _cuda(), reason="no CUDA device")]


def test_cuda_run_reports_device_memory_and_syncs() -> None:
    config = ExperimentConfig(
        task={"dataset": {"n_prompts": 8}, "max_output_tokens": 16},
        transformers={"batch_size": 4, "dtype": "bfloat16"},
        measurement={"warmup": {"n_warmup": 1, "thermal_floor_s": 0}},
    )
    result = run_experiment(config)
    assert result.model.device.startswith("cuda")
    assert result.model.dtype == "bfloat16"
    assert result.memory.peak_device_mib is not None and result.memory.peak_device_mib > 0
    assert result.warmup.thermal_floor_s >= 30  # the GPU minimum applies
    assert result.latency.ttft is not None
