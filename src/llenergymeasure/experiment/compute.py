"""Compute accounting: the FLOPs a window performed, and the rate it achieved."""

from __future__ import annotations

from llenergymeasure.engines.base import ModelInfo
from llenergymeasure.records.result import FlopsResult

__all__ = ["flops_result"]


def flops_result(
    info: ModelInfo, n_tokens: int, n_output: int, window_s: float
) -> FlopsResult | None:
    """2 x non-embedding parameters x processed tokens (prefill + decode)."""
    if info.n_non_embedding_params is None or n_tokens == 0:
        return None
    total = 2.0 * info.n_non_embedding_params * n_tokens
    return FlopsResult(
        total=total,
        per_output_token=total / n_output if n_output else total,
        achieved_flops_per_s=total / window_s if window_s > 0 else 0.0,
        method=(
            "2 x non-embedding parameters x (input + output tokens); attention-score FLOPs "
            "and padding excluded"
        ),
        confidence="medium",
    )
