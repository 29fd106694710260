"""The load generator against a streaming server whose timing is known.

The fake server waits 50 ms before its first token and then emits one every 20 ms; the
measured figures must come back as those, within what a shared 2-core machine adds
(the tolerances are honest: scheduling delays only ever add time).
"""

from __future__ import annotations

import pytest

from llenergymeasure import run_experiment
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.testing.fake_openai_server import FakeOpenAIServer


def _serving(url: str, **serving: object) -> dict[str, object]:
    return {
        "mode": "serving",
        "task": {"dataset": {"n_prompts": 5}, "max_output_tokens": 16},
        "serving": {"endpoint": url, **serving},
        "measurement": {"warmup": {"n_warmup": 1}, "baseline": {"enabled": False}},
    }


@pytest.fixture(scope="module")
def constant_run() -> ExperimentResult:
    with FakeOpenAIServer(ttft_ms=50, itl_ms=20, n_tokens=16) as server:
        config = _serving(
            server.url,
            arrival={"process": "constant", "rate": 8},
            duration_s=5,
            slo={"ttft_ms": 400, "tpot_ms": 60},
        )
        return run_experiment(config)


def test_inter_token_latency_is_every_gap_of_the_stream(constant_run: ExperimentResult) -> None:
    serving = constant_run.serving
    assert serving is not None and serving.latency.itl is not None
    itl = serving.latency.itl
    assert itl.p50_ms == pytest.approx(20.0, abs=3.0)
    # every gap: 15 per completed request of the window, not one mean per request
    assert itl.n == 15 * serving.latency.e2e.n  # type: ignore[union-attr]


def test_ttft_and_e2e_match_the_server(constant_run: ExperimentResult) -> None:
    latency = constant_run.serving.latency  # type: ignore[union-attr]
    assert latency.ttft is not None and latency.e2e is not None and latency.tpot is not None
    assert latency.ttft.p50_ms == pytest.approx(50.0, abs=15.0)
    assert latency.ttft.p50_ms >= 49.0
    assert latency.e2e.p50_ms == pytest.approx(50 + 15 * 20, abs=25.0)
    assert latency.tpot.p50_ms == pytest.approx(20.0, abs=2.0)


def test_rates_window_and_goodput(constant_run: ExperimentResult) -> None:
    s = constant_run.serving
    assert s is not None
    assert s.arrival.requested_rate_per_s == 8
    assert s.arrival.n_scheduled == 40  # 8/s for 5 s, exactly, for a constant process
    assert s.arrival.achieved_rate_per_s == pytest.approx(8.0, rel=0.05)
    assert not s.arrival.fell_behind
    w = s.window
    assert 0 < w.start_s < w.end_s == pytest.approx(5.0, abs=0.2)
    assert w.duration_s == pytest.approx(w.end_s - w.start_s)
    # a steady 8/s with 350 ms per request: about 8 completions per window second
    assert s.requests_per_s == pytest.approx(8.0, rel=0.2)
    assert s.output_tokens_per_s == pytest.approx(8.0 * 16, rel=0.2)
    assert w.mean_in_flight == pytest.approx(8 * 0.35, rel=0.25)  # Little's law
    assert s.goodput.attainment == 1.0  # 50 ms TTFT, 20 ms TPOT: every target met
    assert s.goodput.goodput_per_s == pytest.approx(s.requests_per_s)
    assert s.queueing is not None and s.queueing.n > 0  # the fake /metrics
    # the headline sections describe the same window
    assert constant_run.mode == "serving"
    assert constant_run.window.duration_s == pytest.approx(w.duration_s)
    assert constant_run.throughput.requests_per_s == pytest.approx(s.requests_per_s)


def test_every_request_keeps_its_token_times(constant_run: ExperimentResult) -> None:
    s = constant_run.serving
    assert s is not None
    done = [r for r in s.requests if r.done_s is not None]
    assert len(done) == 40
    for r in done:
        assert r.n_output_tokens == 16 and r.output_tokens_source == "usage"
        assert len(r.token_times_s) == 16 and r.finish_reason == "length"
        assert r.sent_s is not None and r.first_token_s == r.token_times_s[0]
        assert r.sent_s <= r.first_token_s <= r.done_s


def test_an_slo_tighter_than_the_server_gives_no_goodput() -> None:
    with FakeOpenAIServer(ttft_ms=50, itl_ms=20, n_tokens=8) as server:
        config = _serving(
            server.url,
            arrival={"process": "poisson", "rate": 6},
            duration_s=3,
            slo={"ttft_ms": 10},
        )
        result = run_experiment(config)
    goodput = result.serving.goodput  # type: ignore[union-attr]
    assert goodput.n_evaluated > 0
    assert goodput.n_met == 0 and goodput.goodput_per_s == 0.0


def test_closed_loop_keeps_n_users_in_flight() -> None:
    with FakeOpenAIServer(ttft_ms=20, itl_ms=10, n_tokens=10) as server:
        config = _serving(server.url, arrival={"process": "closed", "n_users": 3}, duration_s=3)
        result = run_experiment(config)
    s = result.serving
    assert s is not None
    assert s.arrival.requested_rate_per_s is None and s.arrival.n_users == 3
    assert s.window.mean_in_flight == pytest.approx(3.0, abs=0.5)
    # three users, 110 ms per request: about 27 requests per second
    assert s.requests_per_s == pytest.approx(3 / 0.11, rel=0.3)


def test_max_concurrency_holds_requests_back_in_llem() -> None:
    with FakeOpenAIServer(ttft_ms=50, itl_ms=20, n_tokens=10) as server:
        config = _serving(
            server.url,
            arrival={"process": "constant", "rate": 20},
            duration_s=3,
            max_concurrency=1,
        )
        result = run_experiment(config)
    s = result.serving
    assert s is not None
    assert s.window.mean_in_flight is not None and s.window.mean_in_flight <= 1.0
    assert s.latency.client_queue is not None and s.latency.client_queue.p90_ms > 100
    assert not s.arrival.fell_behind  # dispatched on time: the wait is the cap's


def test_a_minimal_streaming_server_is_measured_by_its_chunks() -> None:
    # no /models, no usage, a plain content type, no [DONE]: what a small server may do
    with FakeOpenAIServer(ttft_ms=30, itl_ms=20, n_tokens=10, minimal=True) as server:
        config = _serving(server.url, arrival={"process": "constant", "rate": 5}, duration_s=3)
        config["task"] = {"model": "fake-model", "dataset": {"n_prompts": 3}}
        result = run_experiment(config)
    s = result.serving
    assert s is not None and s.server.model == "fake-model"
    assert s.latency.itl is not None and s.latency.itl.p50_ms == pytest.approx(20.0, abs=3.0)
    done = [r for r in s.requests if r.done_s is not None]
    assert done and all(r.n_output_tokens == 10 for r in done)
    assert {r.output_tokens_source for r in done} == {"chunks"}
    assert "tokens_from_chunks" in {w.code for w in result.warnings}
