"""Per-request times under static batching, from one timestamp per decoding step."""

from __future__ import annotations

from collections.abc import Sequence

from llenergymeasure.engines.base import RequestOutput

__all__ = ["STATIC_BATCH_TIMING", "requests_from_steps"]

STATIC_BATCH_TIMING = (
    "static batching, one timestamp per decoding step: TTFT = batch start -> the batch's first "
    "generated token (shared by every request of the batch, which share the prefill); "
    "inter-token latency = mean step time over the request's own later tokens; "
    "latency = batch start -> the step that produced the request's last token"
)


def requests_from_steps(
    *,
    batch_start_s: float,
    step_times_s: Sequence[float],
    indices: Sequence[int],
    n_input_tokens: Sequence[int],
    n_output_tokens: Sequence[int],
    token_ids: Sequence[tuple[int, ...]] | None = None,
) -> list[RequestOutput]:
    """One RequestOutput per request of a batch.

    ``step_times_s[k]`` is when token ``k+1`` of every live sequence was produced.
    A request that produced ``n`` tokens finished at step ``n``.
    """
    records = []
    for row, index in enumerate(indices):
        n_out = n_output_tokens[row]
        if n_out > 0 and step_times_s:
            last = step_times_s[min(n_out, len(step_times_s)) - 1]
            ttft_ms: float | None = (step_times_s[0] - batch_start_s) * 1000.0
            latency_ms = (last - batch_start_s) * 1000.0
            itl_ms = (last - step_times_s[0]) * 1000.0 / (n_out - 1) if n_out > 1 else None
        else:
            ttft_ms, itl_ms = None, None
            latency_ms = (
                (step_times_s[-1] if step_times_s else batch_start_s) - batch_start_s
            ) * 1e3
        records.append(
            RequestOutput(
                index=index,
                n_input_tokens=n_input_tokens[row],
                n_output_tokens=n_out,
                latency_ms=latency_ms,
                ttft_ms=ttft_ms,
                itl_ms=itl_ms,
                token_ids=token_ids[row] if token_ids is not None else (),
            )
        )
    return records
