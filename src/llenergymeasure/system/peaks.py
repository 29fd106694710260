"""Peak dense compute and memory bandwidth of the GPUs MFU and MBU are measured against.

Figures are NVIDIA's datasheet values for the board as sold (boost clock, default power
limit), *dense*: where a datasheet quotes "with sparsity", half of it. ``float32`` is the
plain FP32 rate, not TF32: PyTorch runs float32 matmuls in full FP32 unless a user allows
TF32. A device not in the table has no peak, and MFU/MBU on it are None; so has a MIG slice,
which has a fraction of the board's SMs and bandwidth that no datasheet row gives.
Names are matched as NVML and ``torch.cuda.get_device_name`` report them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PEAKS", "DevicePeak", "device_peak", "is_mig_name"]

_T = 1e12
_H100_SXM = "NVIDIA H100 Tensor Core GPU datasheet (SXM5 column), nvidia.com"
_H100_PCIE = "NVIDIA H100 Tensor Core GPU datasheet (PCIe column), nvidia.com"
_H100_NVL = "NVIDIA H100 Tensor Core GPU datasheet (NVL column), nvidia.com"
_H200 = "NVIDIA H200 Tensor Core GPU datasheet (SXM column), nvidia.com"
_H200_NVL = "NVIDIA H200 Tensor Core GPU datasheet (NVL column), nvidia.com"
_A100 = "NVIDIA A100 Tensor Core GPU datasheet, nvidia.com"
_L40S = "NVIDIA L40S datasheet, nvidia.com"
_L4 = "NVIDIA L4 Tensor Core GPU datasheet, nvidia.com"
_A10 = "NVIDIA A10 Tensor Core GPU datasheet, nvidia.com"
_T4 = "NVIDIA T4 Tensor Core GPU datasheet, nvidia.com"
_V100 = "NVIDIA V100 Tensor Core GPU datasheet, nvidia.com"


@dataclass(frozen=True)
class DevicePeak:
    """One board's peaks: FLOP/s by dtype (dense) and bytes/s of memory bandwidth."""

    name: str
    names: tuple[str, ...]  # the device names it is known by, lower case
    flops_per_s: dict[str, float]
    memory_bytes_per_s: float
    source: str

    def dense_flops_per_s(self, dtype: str | None) -> float | None:
        """The dense peak for ``dtype`` (``bfloat16``, ``float16``, ``float32``, ...)."""
        return self.flops_per_s.get((dtype or "").removeprefix("torch."))


def _half(bf16: float, fp32: float, fp8: float | None = None) -> dict[str, float]:
    rates = {"bfloat16": bf16 * _T, "float16": bf16 * _T, "float32": fp32 * _T}
    if fp8 is not None:
        rates["float8"] = fp8 * _T
    return rates


PEAKS: tuple[DevicePeak, ...] = (
    DevicePeak("H200 SXM", ("nvidia h200",), _half(989, 67, 1979), 4.8e12, _H200),
    DevicePeak("H200 NVL", ("nvidia h200 nvl",), _half(835, 60, 1670), 4.8e12, _H200_NVL),
    DevicePeak(
        "H100 SXM",
        ("nvidia h100 80gb hbm3", "nvidia h100 sxm5 80gb"),
        _half(989, 67, 1979),
        3.35e12,
        _H100_SXM,
    ),
    DevicePeak("H100 PCIe", ("nvidia h100 pcie",), _half(756, 51, 1513), 2.0e12, _H100_PCIE),
    DevicePeak("H100 NVL", ("nvidia h100 nvl",), _half(835, 60, 1670), 3.9e12, _H100_NVL),
    DevicePeak("A100 SXM4 80GB", ("nvidia a100-sxm4-80gb",), _half(312, 19.5), 2.039e12, _A100),
    DevicePeak("A100 SXM4 40GB", ("nvidia a100-sxm4-40gb",), _half(312, 19.5), 1.555e12, _A100),
    DevicePeak("A100 PCIe 80GB", ("nvidia a100 80gb pcie",), _half(312, 19.5), 1.935e12, _A100),
    DevicePeak("A100 PCIe 40GB", ("nvidia a100-pcie-40gb",), _half(312, 19.5), 1.555e12, _A100),
    DevicePeak("L40S", ("nvidia l40s",), _half(362.05, 91.6, 733), 864e9, _L40S),
    DevicePeak("L4", ("nvidia l4",), _half(121, 30.3, 242.5), 300e9, _L4),
    DevicePeak("A10", ("nvidia a10",), _half(125, 31.2), 600e9, _A10),
    # T4 and V100 have no bfloat16: float16 tensor cores only.
    DevicePeak("T4", ("tesla t4",), {"float16": 65 * _T, "float32": 8.1 * _T}, 320e9, _T4),
    DevicePeak(
        "V100 SXM2",
        ("tesla v100-sxm2-16gb", "tesla v100-sxm2-32gb"),
        {"float16": 125 * _T, "float32": 15.7 * _T},
        900e9,
        _V100,
    ),
    DevicePeak(
        "V100 PCIe",
        ("tesla v100-pcie-16gb", "tesla v100-pcie-32gb"),
        {"float16": 112 * _T, "float32": 14 * _T},
        900e9,
        _V100,
    ),
)


def is_mig_name(name: str) -> bool:
    """Whether a device name is a MIG slice (``NVIDIA A100-SXM4-40GB MIG 1g.5gb``)."""
    return " mig " in f" {name.lower()} "


def device_peak(name: str) -> DevicePeak | None:
    """The table row of a device named ``name``; None for devices not in it and MIG slices."""
    if is_mig_name(name):
        return None
    wanted = " ".join(name.lower().split())
    for peak in PEAKS:
        if wanted in peak.names:
            return peak
    return None
