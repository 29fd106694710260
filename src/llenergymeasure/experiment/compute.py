"""Compute accounting: the FLOPs a window performed by phase, the rate it achieved, and how
much of the devices' peak compute (MFU) and, in decode, peak memory bandwidth (MBU) it used.

Phase times come from the engine's per-step timing (prefill: a batch's start to its first
token; decode: first token to last); engines that do not time steps (continuous batching)
get FLOPs and the window's MFU, and no per-phase rates or MBU.
"""

from __future__ import annotations

from collections.abc import Sequence

from llenergymeasure.engines.base import BatchTiming, ModelInfo, RequestOutput
from llenergymeasure.engines.model_files import dtype_bytes
from llenergymeasure.experiment.flops import (
    Flops,
    decode_context_sum,
    decode_flops,
    kv_bytes_per_position,
    param_counts,
    prefill_flops,
)
from llenergymeasure.records.compute import (
    ComputeResult,
    DevicePeakRecord,
    ModelShape,
    PhaseCompute,
)
from llenergymeasure.records.result import FlopsResult
from llenergymeasure.system.peaks import device_peak, is_mig_name

__all__ = ["COMPUTE_METHOD", "compute_result", "flops_result", "phase_seconds"]

COMPUTE_METHOD = (
    "per layer from the model's config: attention projections (grouped KV heads), MLP (gated "
    "or not; routed experts), attention scores at each token's causal context, and the LM "
    "head (tied or not) once per prompt and once per decode step; logical parameters, "
    "padding and tokens after a request's end excluded. MFU: FLOP/s / (devices x dense peak "
    "for the dtype); MBU: (weights + KV cache of live requests) read per decode step / "
    "decode time / (devices x peak memory bandwidth)"
)


def phase_seconds(batches: Sequence[BatchTiming]) -> tuple[float | None, float | None]:
    """Time in prefill and in decode, summed over batches; (None, None) without step times."""
    timed = [b for b in batches if b.step_end_s]
    if not timed:
        return None, None
    prefill_s = sum(b.step_end_s[0] - b.start_s for b in timed)
    decode_s = sum(b.step_end_s[-1] - b.step_end_s[0] for b in timed)
    return prefill_s, decode_s


def compute_result(
    info: ModelInfo,
    requests: Sequence[RequestOutput],
    batches: Sequence[BatchTiming],
    window_s: float,
) -> ComputeResult | None:
    """FLOPs by phase, MFU and MBU of one window; None when the model's shape is unknown."""
    shape = info.shape
    if shape is None:
        return None
    prefill, decode = Flops(), Flops()
    for r in requests:
        prefill = prefill + prefill_flops(shape, r.n_input_tokens)
        decode = decode + decode_flops(shape, r.n_input_tokens, r.n_output_tokens)
    prefill_s, decode_s = phase_seconds(batches)
    peak, note = _peak(info)
    peak_flops = (
        peak.dense_flops_per_s * peak.n_devices if peak and peak.dense_flops_per_s else None
    )
    total = prefill.total + decode.total
    achieved = total / window_s if window_s > 0 else 0.0
    decode_bytes, bytes_note = _decode_bytes(shape, info.dtype, requests, batches)
    bytes_per_s = _rate(decode_bytes, decode_s)
    peak_bw = peak.memory_bytes_per_s * peak.n_devices if peak else None
    return ComputeResult(
        shape=shape,
        params=param_counts(shape),
        prefill=_phase(prefill, sum(r.n_input_tokens for r in requests), prefill_s, peak_flops),
        decode=_phase(
            decode, sum(max(r.n_output_tokens - 1, 0) for r in requests), decode_s, peak_flops
        ),
        total_flops=total,
        achieved_flops_per_s=achieved,
        mfu=achieved / peak_flops if peak_flops else None,
        decode_bytes=decode_bytes,
        decode_bytes_per_s=bytes_per_s,
        mbu=bytes_per_s / peak_bw if bytes_per_s is not None and peak_bw else None,
        peak=peak,
        peak_note="; ".join(n for n in (note, bytes_note) if n) or None,
        method=COMPUTE_METHOD,
    )


def flops_result(
    compute: ComputeResult | None, info: ModelInfo, n_tokens: int, n_output: int, window_s: float
) -> FlopsResult | None:
    """The FLOPs headline: from the compute account, else 2 x non-embedding parameters.

    ``per_output_token`` is None when the window made no output token (never the total).
    """
    if compute is not None:
        total, method = compute.total_flops, COMPUTE_METHOD
    elif info.n_non_embedding_params is not None and n_tokens > 0:
        total = 2.0 * info.n_non_embedding_params * n_tokens
        method = (
            "2 x non-embedding parameters x (input + output tokens): the model's config does "
            "not describe its shape; attention-score FLOPs and padding excluded"
        )
    else:
        return None
    return FlopsResult(
        total=total,
        per_output_token=total / n_output if n_output > 0 else None,
        achieved_flops_per_s=total / window_s if window_s > 0 else 0.0,
        method=method,
        confidence="medium",
    )


def _rate(amount: float | None, seconds: float | None) -> float | None:
    if amount is None or seconds is None or seconds <= 0:
        return None
    return amount / seconds


def _phase(
    flops: Flops, n_tokens: int, seconds: float | None, peak_flops: float | None
) -> PhaseCompute:
    rate = _rate(flops.total, seconds)
    return PhaseCompute(
        n_tokens=n_tokens,
        flops=flops.total,
        attention_score_flops=flops.scores,
        lm_head_flops=flops.lm_head,
        duration_s=seconds,
        flops_per_s=rate,
        mfu=rate / peak_flops if rate is not None and peak_flops else None,
    )


def _peak(info: ModelInfo) -> tuple[DevicePeakRecord | None, str | None]:
    """The devices' peak, or why there is none."""
    names = info.device_names
    if not names:
        return None, f"no peak figures for `{info.device}`: the table lists NVIDIA GPUs"
    if any(is_mig_name(n) for n in names):
        return None, "a MIG slice: its share of the board's compute and bandwidth is not tabled"
    if len(set(names)) > 1:
        return None, f"different devices ({', '.join(sorted(set(names)))}): no single peak"
    row = device_peak(names[0])
    if row is None:
        return None, f"{names[0]} is not in the table of device peaks (system/peaks.py)"
    dense = row.dense_flops_per_s(info.dtype)
    record = DevicePeakRecord(
        device_name=names[0],
        n_devices=len(names),
        dtype=info.dtype or "unknown",
        dense_flops_per_s=dense,
        memory_bytes_per_s=row.memory_bytes_per_s,
        source=row.source,
    )
    return record, None if dense else f"no {info.dtype} peak for {row.name}: no MFU"


def _decode_bytes(
    shape: ModelShape,
    dtype: str | None,
    requests: Sequence[RequestOutput],
    batches: Sequence[BatchTiming],
) -> tuple[float | None, str | None]:
    """Bytes read over every decode step: the weights once per step of a batch, and the KV
    cache of each request still generating; None (with why) when not known."""
    width = dtype_bytes(dtype)
    if not any(b.step_end_s for b in batches):
        return None, None
    if shape.quantization is not None or width is None:
        return None, "bytes per weight of this model's storage are not known: no MBU"
    if shape.n_experts:
        return None, "weights read per step of a mixture of experts depend on routing: no MBU"
    n_steps = sum(max(len(b.step_end_s) - 1, 0) for b in batches)
    weights = param_counts(shape).total * width * n_steps
    positions = sum(decode_context_sum(r.n_input_tokens, r.n_output_tokens) for r in requests)
    return float(weights + kv_bytes_per_position(shape, width) * positions), None
