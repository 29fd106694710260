"""Queueing delay from a server's Prometheus histogram."""

from __future__ import annotations

import pytest

from llenergymeasure.serving.prometheus import histogram_quantile, parse_histogram, queueing_delay

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
    # 4 of 10 under 100 ms, 6 between 100 ms and 1 s: the median is a sixth into that bucket
    assert delay.p50_ms == pytest.approx(100 + 900 * (1 / 6))


def test_a_quantile_beyond_the_last_finite_bucket_is_its_bound() -> None:
    histogram = parse_histogram(_text(0, 0, 0.0), "vllm:request_queue_time_seconds")
    assert histogram is not None
    assert histogram_quantile(0.5, histogram) is None  # nothing observed


def test_a_server_without_the_metric_has_no_queueing_figure() -> None:
    assert parse_histogram("up 1\n", "vllm:request_queue_time_seconds") is None
    assert queueing_delay(None, None) is None
