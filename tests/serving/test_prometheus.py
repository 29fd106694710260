"""Queueing delay from a server's Prometheus histogram."""

from __future__ import annotations

import pytest

from llenergymeasure.serving.prometheus import parse_histogram, quantile_at_most, queueing_delay

TEXT = """# HELP vllm:request_queue_time_seconds Histogram of time spent in WAITING phase
# TYPE vllm:request_queue_time_seconds histogram
vllm:request_queue_time_seconds_bucket{engine="0",le="0.1",model_name="m"} {a}
vllm:request_queue_time_seconds_bucket{engine="0",le="1.0",model_name="m"} {b}
vllm:request_queue_time_seconds_bucket{engine="0",le="+Inf",model_name="m"} {b}
vllm:request_queue_time_seconds_count{engine="0",model_name="m"} {b}
vllm:request_queue_time_seconds_sum{engine="0",model_name="m"} {s}
vllm:num_requests_waiting{engine="0",model_name="m"} 3.0
"""


def _text(a: int, b: int, s: float) -> str:
    return TEXT.replace("{a}", str(a)).replace("{b}", str(b)).replace("{s}", str(s))


def test_the_histogram_is_read_and_the_window_is_the_difference_of_two_scrapes() -> None:
    start = parse_histogram(_text(2, 2, 0.1), "vllm:request_queue_time_seconds")
    end = parse_histogram(_text(6, 12, 5.1), "vllm:request_queue_time_seconds")
    delay = queueing_delay(start, end)
    assert delay is not None
    assert delay.n == 10
    assert delay.mean_ms == pytest.approx(500.0)  # 5 s over 10 requests
    # 4 of 10 under 100 ms, 6 between 100 ms and 1 s: the median is at most 1 s
    assert delay.p50_at_most_ms == pytest.approx(1000.0)
    assert delay.p99_at_most_ms == pytest.approx(1000.0)


def test_a_quantile_has_no_bound_in_the_last_bucket_or_without_observations() -> None:
    empty = parse_histogram(_text(0, 0, 0.0), "vllm:request_queue_time_seconds")
    assert empty is not None and quantile_at_most(0.5, empty) is None
    slow = parse_histogram(
        _text(0, 0, 0.0)
        .replace('le="+Inf",model_name="m"} 0', 'le="+Inf",model_name="m"} 5')
        .replace('_count{engine="0",model_name="m"} 0', '_count{engine="0",model_name="m"} 5'),
        "vllm:request_queue_time_seconds",
    )
    assert slow is not None and slow.count == 5
    assert quantile_at_most(0.5, slow) is None  # above 1 s: no upper bound


def test_a_server_without_the_metric_has_no_queueing_figure() -> None:
    assert parse_histogram("up 1\n", "vllm:request_queue_time_seconds") is None
    assert queueing_delay(None, None) is None
