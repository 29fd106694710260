"""Compute accounting of a window: FLOPs by phase, MFU and decode MBU against a device peak."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_flops import SMOLLM2_135M

from llenergymeasure.engines.base import BatchTiming, ModelInfo, RequestOutput
from llenergymeasure.experiment.compute import compute_result, flops_result, phase_seconds

# Two requests of one batch, 10 prompt tokens and 3 output tokens each: prefill ends at
# 10 ms, decode steps at 15 and 20 ms; the window lasts 25 ms.
REQUESTS = [
    RequestOutput(
        index=i, n_input_tokens=10, n_output_tokens=3, latency_ms=20.0, ttft_ms=10.0, itl_ms=5.0
    )
    for i in range(2)
]
BATCHES = [BatchTiming(indices=(0, 1), start_s=0.0, step_end_s=(0.010, 0.015, 0.020))]
WINDOW_S = 0.025
# Hand-worked in test_flops: 2,183,791,104 per prefill, 539,509,248 per decode.
PREFILL = 2 * 2_183_791_104
DECODE = 2 * 539_509_248


def _info(**overrides: object) -> ModelInfo:
    fields: dict[str, object] = {
        "n_params": 134_515_008,
        "n_non_embedding_params": 106_203_456,
        "dtype": "bfloat16",
        "device": "cuda:0",
        "engine_version": "test",
        "shape": SMOLLM2_135M,
        "device_names": ("NVIDIA H200",),
    }
    fields.update(overrides)
    return ModelInfo(**fields)  # type: ignore[arg-type]


def test_mfu_and_mbu_on_an_h200_by_hand() -> None:
    result = compute_result(_info(), REQUESTS, BATCHES, WINDOW_S)
    assert result is not None
    assert result.params.total == 134_479_872
    assert result.prefill.flops == PREFILL and result.decode.flops == DECODE
    assert (result.prefill.n_tokens, result.decode.n_tokens) == (20, 4)
    assert result.prefill.duration_s == pytest.approx(0.010)
    assert result.decode.duration_s == pytest.approx(0.010)
    assert result.prefill.mfu == pytest.approx(PREFILL / 0.010 / 989e12)
    assert result.decode.mfu == pytest.approx(DECODE / 0.010 / 989e12)
    assert result.total_flops == PREFILL + DECODE
    assert result.mfu == pytest.approx((PREFILL + DECODE) / WINDOW_S / 989e12)
    # decode: 2 steps x 134,479,872 weights x 2 bytes, + KV cache at 23,040 bytes per position
    # for 2 requests x (11 + 12) positions
    expected_bytes = 2 * 134_479_872 * 2 + 23_040 * 46
    assert result.decode_bytes == expected_bytes == 538_979_328
    assert result.mbu == pytest.approx(expected_bytes / 0.010 / 4.8e12)
    assert result.peak is not None and result.peak.source.startswith("NVIDIA H200")
    assert result.peak_note is None


def test_two_devices_double_the_peak() -> None:
    one = compute_result(_info(), REQUESTS, BATCHES, WINDOW_S)
    two = compute_result(_info(device_names=("NVIDIA H200",) * 2), REQUESTS, BATCHES, WINDOW_S)
    assert one is not None and two is not None and one.mfu and two.mfu and one.mbu and two.mbu
    assert two.mfu == pytest.approx(one.mfu / 2) and two.mbu == pytest.approx(one.mbu / 2)


def test_on_the_cpu_mfu_and_mbu_are_null_with_a_reason() -> None:
    result = compute_result(
        _info(device="cpu", device_names=(), dtype="float32"), REQUESTS, BATCHES, WINDOW_S
    )
    assert result is not None
    assert result.mfu is None and result.mbu is None and result.peak is None
    assert result.prefill.mfu is None and result.decode.mfu is None
    assert result.peak_note is not None and "cpu" in result.peak_note
    assert result.prefill.flops == PREFILL  # the FLOPs themselves do not need a peak
    assert result.decode_bytes == 2 * 134_479_872 * 4 + 2 * 30 * 3 * 64 * 4 * 46


def test_mig_slices_unknown_boards_and_missing_dtypes_give_null_with_a_reason() -> None:
    mig = compute_result(
        _info(device_names=("NVIDIA A100-SXM4-40GB MIG 1g.5gb",)), REQUESTS, BATCHES, WINDOW_S
    )
    assert mig is not None and mig.mfu is None and mig.peak_note and "MIG" in mig.peak_note
    other = compute_result(_info(device_names=("NVIDIA RTX 9999",)), REQUESTS, BATCHES, WINDOW_S)
    assert other is not None and other.mfu is None and "not in the table" in str(other.peak_note)
    t4 = compute_result(_info(device_names=("Tesla T4",)), REQUESTS, BATCHES, WINDOW_S)
    assert t4 is not None and t4.mfu is None and t4.mbu is not None  # bandwidth is known
    assert "no bfloat16 peak" in str(t4.peak_note)


def test_quantised_models_count_logical_flops_but_have_no_mbu() -> None:
    shape = SMOLLM2_135M.model_copy(update={"quantization": "bitsandbytes"})
    result = compute_result(_info(shape=shape), REQUESTS, BATCHES, WINDOW_S)
    assert result is not None
    assert result.params.total == 134_479_872 and result.total_flops == PREFILL + DECODE
    assert result.mfu is not None and result.mbu is None
    assert "bytes per weight" in str(result.peak_note)


def test_without_step_timing_only_the_window_rate_is_known() -> None:
    result = compute_result(_info(), REQUESTS, [], WINDOW_S)
    assert result is not None
    assert result.prefill.duration_s is None and result.prefill.mfu is None
    assert result.decode_bytes is None and result.mbu is None
    assert result.mfu == pytest.approx((PREFILL + DECODE) / WINDOW_S / 989e12)
    assert phase_seconds([BatchTiming((0,), 1.0, ())]) == (None, None)


def test_the_flops_headline_follows_the_compute_account_or_falls_back() -> None:
    info = _info()
    compute = compute_result(info, REQUESTS, BATCHES, WINDOW_S)
    headline = flops_result(compute, info, 26, 6, WINDOW_S)
    assert headline is not None and headline.total == PREFILL + DECODE
    assert headline.per_output_token == pytest.approx((PREFILL + DECODE) / 6)
    assert compute_result(_info(shape=None), REQUESTS, BATCHES, WINDOW_S) is None
    fallback = flops_result(None, _info(shape=None), 26, 6, WINDOW_S)
    assert fallback is not None and fallback.total == 2 * 106_203_456 * 26
    assert "does not describe its shape" in fallback.method
    assert flops_result(None, _info(shape=None, n_non_embedding_params=None), 26, 6, 1.0) is None


def test_no_output_token_has_no_flops_per_output_token() -> None:
    info = _info()
    silent = [replace(r, n_output_tokens=0) for r in REQUESTS]
    for compute in (compute_result(info, silent, BATCHES, WINDOW_S), None):
        headline = flops_result(compute, _info(shape=None) if compute is None else info, 20, 0, 1.0)
        assert headline is not None and headline.total > 0
        assert headline.per_output_token is None
