"""The transformers engine on a CUDA GPU: `pytest -m gpu` on a GPU machine with the dev
environment (skipped without one). scripts/gpu-check.sh does not run these: the offline
device machine has no pytest; it checks the same paths through `llem` itself."""

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


def test_cuda_step_times_come_from_events_and_compute_has_a_peak() -> None:
    import torch

    from llenergymeasure.engines.registry import get_engine
    from llenergymeasure.engines.resolve import resolve_model

    config = ExperimentConfig(
        task={"dataset": {"n_prompts": 4}, "max_output_tokens": 12},
        transformers={
            "batch_size": 2,
            "dtype": "bfloat16",
            "sampling": {"do_sample": False, "min_new_tokens": 12},
        },
    )
    model = get_engine("transformers").load(config, resolve_model("smollm2-135m"))
    try:
        prepared = model.prepare(["Name a colour.", "Count to five.", "Hi", "Why?"])
        out = model.generate(prepared)
    finally:
        model.close()
    assert model.info.device_names == (torch.cuda.get_device_name(0),)
    for batch in out.batches:
        # one event per token, resolved after the batch: increasing, after the batch start
        assert len(batch.step_end_s) == 12
        assert batch.start_s < batch.step_end_s[0]
        assert list(batch.step_end_s) == sorted(batch.step_end_s)
    assert all(r.ttft_ms is not None and r.ttft_ms > 0 for r in out.requests)
