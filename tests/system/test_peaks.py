"""The table of device peaks, matched by the names NVML and torch report."""

from __future__ import annotations

import pytest

from llenergymeasure.system.peaks import PEAKS, device_peak, is_mig_name


def test_h200_and_h100_sxm_bfloat16_dense_peaks_and_bandwidths() -> None:
    h200 = device_peak("NVIDIA H200")
    h100 = device_peak("NVIDIA H100 80GB HBM3")
    assert h200 is not None and h100 is not None
    assert h200.dense_flops_per_s("bfloat16") == h100.dense_flops_per_s("bfloat16") == 989e12
    assert h200.memory_bytes_per_s == 4.8e12
    assert h100.memory_bytes_per_s == 3.35e12
    # float32 is the plain FP32 rate (PyTorch does not use TF32 unless allowed)
    assert h200.dense_flops_per_s("float32") == 67e12
    assert h200.dense_flops_per_s("torch.bfloat16") == 989e12


def test_similar_names_do_not_match_each_other() -> None:
    l4, l40s = device_peak("NVIDIA L4"), device_peak("NVIDIA L40S")
    assert l4 is not None and l40s is not None and l4.name == "L4" and l40s.name == "L40S"
    h200_nvl = device_peak("NVIDIA H200 NVL")
    assert h200_nvl is not None and h200_nvl.dense_flops_per_s("bfloat16") == 835e12
    a100 = device_peak("NVIDIA A100-SXM4-80GB")
    assert a100 is not None and a100.memory_bytes_per_s == pytest.approx(2.039e12)
    assert device_peak("NVIDIA A10G") is None  # a different board from the A10


def test_unknown_devices_and_mig_slices_have_no_peak() -> None:
    assert device_peak("NVIDIA GeForce RTX 4090") is None
    assert device_peak("cpu") is None
    mig = "NVIDIA A100-SXM4-40GB MIG 1g.5gb"
    assert is_mig_name(mig) and device_peak(mig) is None
    assert not is_mig_name("NVIDIA H200")


def test_boards_without_bfloat16_have_no_such_peak() -> None:
    t4 = device_peak("Tesla T4")
    assert t4 is not None and t4.dense_flops_per_s("bfloat16") is None
    assert t4.dense_flops_per_s("float16") == 65e12


def test_every_row_cites_a_source_and_has_dense_rates() -> None:
    for peak in PEAKS:
        assert peak.source and peak.names and peak.memory_bytes_per_s > 0
        assert all(rate > 0 for rate in peak.flops_per_s.values())
        assert all(name == name.lower() for name in peak.names)
