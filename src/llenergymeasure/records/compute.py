"""Compute records: the model's matmul shape, FLOPs by phase, MFU and MBU against a device's
peak, and window energy attributed to prefill and decode.

FLOPs count multiply-adds as two operations. Parameter counts are *logical*: from the
model's config, whatever the storage (a 4-bit checkpoint counts as many parameters as its
bfloat16 original). A figure that cannot be known (no peak for the device, no per-step
timing) is ``None``, never ``0``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llenergymeasure.records.base import FrozenRecord
from llenergymeasure.records.energy import EnergyMethod

__all__ = [
    "ComputeResult",
    "DevicePeakRecord",
    "ModelShape",
    "ParamCounts",
    "PhaseCompute",
    "PhaseEnergy",
    "PhaseEnergyResult",
]


class ModelShape(FrozenRecord):
    """The matmul shapes of a decoder-only transformer, read from its config."""

    model_type: str | None = Field(description="the config's `model_type`, e.g. `llama`")
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int = Field(description="key/value heads (grouped-query attention)")
    head_dim: int
    intermediate_size: int = Field(description="MLP width (of one expert in a mixture)")
    vocab_size: int
    gated_mlp: bool = Field(description="three MLP matmuls (gate, up, down) rather than two")
    tied_embeddings: bool = Field(description="the LM head shares the input embedding's weights")
    n_experts: int | None = Field(None, description="experts per MLP; None for a dense model")
    n_active_experts: int | None = Field(None, description="experts each token is routed to")
    quantization: str | None = Field(
        None, description="the checkpoint's quantisation method; counts stay logical"
    )


class ParamCounts(FrozenRecord):
    """Logical parameters in the matmuls, from the config (norms and embeddings excluded)."""

    attention: int = Field(description="q, k, v and o projections, all layers")
    mlp: int = Field(description="MLP matmuls (every expert, and routers), all layers")
    lm_head: int = Field(description="hidden x vocab, counted even when tied to the embedding")
    total: int = Field(description="attention + mlp + lm_head")
    active_per_token: int = Field(description="the matmul parameters one token passes through")


class PhaseCompute(FrozenRecord):
    """The FLOPs of one phase (prefill or decode) over the window, and the rate achieved."""

    n_tokens: int = Field(
        description="prefill: prompt tokens; decode: tokens fed back for the next step"
    )
    flops: float
    attention_score_flops: float = Field(
        description="the context-dependent part of `flops` (q·k and attention·v)"
    )
    lm_head_flops: float = Field(description="the LM head's part of `flops`")
    duration_s: float | None = Field(description="time in this phase; None without step timing")
    flops_per_s: float | None
    mfu: float | None = Field(description="flops_per_s / the devices' dense peak for the dtype")


class DevicePeakRecord(FrozenRecord):
    """The peak a device's figures were divided by, with its source."""

    device_name: str
    n_devices: int
    dtype: str
    dense_flops_per_s: float | None = Field(
        description="per device, dense (no sparsity), for the dtype; None if not tabled"
    )
    memory_bytes_per_s: float = Field(description="per device, peak memory bandwidth")
    source: str


class ComputeResult(FrozenRecord):
    """FLOPs from the model's config, per phase, with MFU and decode MBU."""

    shape: ModelShape
    params: ParamCounts
    prefill: PhaseCompute
    decode: PhaseCompute
    total_flops: float
    achieved_flops_per_s: float = Field(description="total_flops / window duration")
    mfu: float | None = Field(description="achieved_flops_per_s / the devices' dense peak")
    decode_bytes: float | None = Field(
        description="weights + KV cache read over every decode step; None when not known"
    )
    decode_bytes_per_s: float | None
    mbu: float | None = Field(description="decode_bytes_per_s / the devices' peak bandwidth")
    peak: DevicePeakRecord | None
    peak_note: str | None = Field(
        None, description="why MFU or MBU is None (no peak for this device, a MIG slice, ...)"
    )
    method: str


class PhaseEnergy(FrozenRecord):
    """The share of window energy attributed to one phase."""

    energy_j: float | None
    duration_s: float
    n_tokens: int = Field(description="prefill: prompt tokens; decode: tokens after the first")
    j_per_token: float | None
    uncertainty_j: float | None = Field(
        description="bound from the trace's range around each interval (resolution limit)"
    )
    n_intervals: int
    n_intervals_under_interval: int = Field(
        description="intervals shorter than the trace's sampling interval"
    )


class PhaseEnergyResult(FrozenRecord):
    """Window energy split into prefill, decode and the rest, by the trace's power curve."""

    method: Literal["attributed"] = "attributed"
    energy_method: EnergyMethod | None = Field(description="how the split window figure was got")
    domains: tuple[str, ...] = Field(description="the energy domains that were split")
    weights: str = Field(description="the trace series that weighted the split")
    power_source: Literal["instant", "averaged"] | None = Field(
        None,
        description="what the GPUs' power curve reads: `instant` power, or `averaged` "
        "(nvmlDeviceGetPowerUsage, a 1 s moving average), which cannot place energy in "
        "phases this short: the phase energies are then null and `note` says so",
    )
    trace_interval_ms: int
    prefill: PhaseEnergy
    decode: PhaseEnergy
    other_j: float | None = Field(
        description="between batches and at the window's edges: neither prefill nor decode"
    )
    note: str
