"""The serving rows of the result table: rates, the window, latencies, goodput, energy."""

from __future__ import annotations

from llenergymeasure.records.base import LatencyStats
from llenergymeasure.records.result import ExperimentResult

__all__ = ["serving_rows"]


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.3f} req/s"


def _stats(stats: LatencyStats | None) -> str:
    if stats is None:
        return "n/a"
    return f"{stats.p50_ms:,.1f} / {stats.p90_ms:,.1f} / {stats.p99_ms:,.1f} ms (n={stats.n:,})"


def _j(value: float | None, digits: int = 4) -> str:
    return "n/a (no reading)" if value is None else f"{value:,.{digits}f} J"


def serving_rows(result: ExperimentResult) -> list[tuple[str, str]]:
    """Rows for a serving result; none for an offline one."""
    s = result.serving
    if s is None:
        return []
    a, w, g = s.arrival, s.window, s.goodput
    requested = "closed loop" if a.requested_rate_per_s is None else _rate(a.requested_rate_per_s)
    behind = " — generator fell behind" if a.fell_behind else ""
    slo = ", ".join(
        f"{name} ≤ {value:g} ms"
        for name, value in (("TTFT", g.ttft_ms), ("TPOT", g.tpot_ms), ("E2E", g.e2e_ms))
        if value is not None
    )
    goodput = (
        f"{_rate(g.goodput_per_s)} ({g.n_met} of {g.n_evaluated} met {slo})" if slo else "no SLO"
    )
    queue = s.queueing
    return [
        ("server", f"{s.server.kind} {s.server.url} ({s.server.model})"),
        (
            "arrivals",
            f"{a.process}: requested {requested}, achieved {_rate(a.achieved_rate_per_s)}"
            f"{behind}; {a.n_sent} sent",
        ),
        (
            "steady-state window",
            f"{w.start_s:,.1f} → {w.end_s:,.1f} s ({w.duration_s:,.1f} s, "
            f"{w.start_rule}); ramp-up {w.ramp_up_s:,.1f} s, drain {w.drain_s:,.1f} s",
        ),
        ("requests/s in window", f"{s.requests_per_s:,.3f} ({w.n_completed} completed)"),
        ("goodput", goodput),
        ("TTFT p50 / p90 / p99", _stats(s.latency.ttft)),
        ("inter-token (every gap)", _stats(s.latency.itl)),
        ("E2E p50 / p90 / p99", _stats(s.latency.e2e)),
        (
            "server queueing (mean)",
            "n/a"
            if queue is None or queue.mean_ms is None
            else f"{queue.mean_ms:,.1f} ms over {queue.n} requests",
        ),
        ("energy per request", _j(s.j_per_request) + _how(s.energy_method, s.j_per_request)),
        ("energy per output token", _j(s.j_per_output_token, 5)),
        ("failed requests", str(s.n_failed)),
    ]


def _how(method: str | None, value: float | None) -> str:
    """How a serving energy figure was obtained, beside it."""
    return "" if method is None or value is None else f" ({method})"
