"""Per-request times from per-step timestamps (static batching)."""

from __future__ import annotations

import pytest

from llenergymeasure.engines.timing import requests_from_steps


def test_requests_share_ttft_and_finish_at_their_own_step() -> None:
    # Batch starts at t=10 s; steps at 10.1, 10.2, 10.3, 10.4 s.
    records = requests_from_steps(
        batch_start_s=10.0,
        step_times_s=[10.1, 10.2, 10.3, 10.4],
        indices=[7, 8],
        n_input_tokens=[5, 9],
        n_output_tokens=[2, 4],
    )
    short, long = records
    assert (short.index, long.index) == (7, 8)
    assert short.ttft_ms == pytest.approx(100.0)
    assert long.ttft_ms == pytest.approx(100.0)
    assert short.latency_ms == pytest.approx(200.0)
    assert long.latency_ms == pytest.approx(400.0)
    assert short.itl_ms == pytest.approx(100.0)
    assert long.itl_ms == pytest.approx(100.0)
    assert (short.n_input_tokens, long.n_output_tokens) == (5, 4)


def test_single_token_has_no_inter_token_latency_and_zero_tokens_no_ttft() -> None:
    one, none = requests_from_steps(
        batch_start_s=0.0,
        step_times_s=[0.05],
        indices=[0, 1],
        n_input_tokens=[3, 3],
        n_output_tokens=[1, 0],
    )
    assert one.itl_ms is None
    assert one.latency_ms == pytest.approx(50.0)
    assert none.ttft_ms is None
    assert none.itl_ms is None
