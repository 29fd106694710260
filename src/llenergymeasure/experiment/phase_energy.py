"""Window energy attributed to prefill and decode, from per-step times and the power trace.

Each domain's window energy is split in proportion to the integral of its trace curve over
the phase intervals: a batch's prefill (its start to its first token) and its decode (first
token to last); what falls between batches or at the window's edges is ``other``. The curve
of a measured domain is the trace's ``power_w`` of that device, an instantaneous reading,
interpolated linearly between samples. An estimated CPU figure is CPU time x watts per
thread, so its curve is this process's CPU utilisation (each row a mean since the previous).

Between two samples the curve is unknown; an interval that ends or starts inside a gap
between samples could hold any power within the range of the samples around that gap. The
uncertainty sums that range x the part of each such gap the interval covers.

A GPU whose trace power is ``nvmlDeviceGetPowerUsage`` (a 1 s moving average, where the GPU
has no instant power field) gets no split: the curve lags a load change by up to a second
(on an H200 it puts half the first second of a load step's energy after it), so it cannot
place energy in prefills of milliseconds and decodes of a few seconds, and no range of
averaged readings bounds the instant power between them. The phase energies are then null
and the note says why.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from llenergymeasure.energy.trace import Trace
from llenergymeasure.engines.base import BatchTiming, RequestOutput
from llenergymeasure.records.compute import PhaseEnergy, PhaseEnergyResult
from llenergymeasure.records.energy import DomainEnergy, EnergyMethod, EnergyResult

__all__ = ["phase_energy"]

_UTILISATION_DEVICE = "process"
_WEAKEST_FIRST: tuple[EnergyMethod, ...] = ("estimated", "integrated", "counter")
_INSTANT: Literal["instant"] = "instant"
_AVERAGED: Literal["averaged"] = "averaged"
_AVERAGING_S = 1.0  # nvmlDeviceGetPowerUsage's moving average, Ampere and newer


@dataclass(frozen=True)
class _Curve:
    """Samples of one series; ``step``: each value is the mean since the previous sample."""

    times: list[float]
    values: list[float]
    step: bool

    def value_at(self, t: float) -> float:
        k = bisect.bisect_left(self.times, t)
        if k == 0:
            return self.values[0]
        if k == len(self.times):
            return self.values[-1]
        if self.step:
            return self.values[k]
        t_a, v_a, t_b, v_b = self.times[k - 1], self.values[k - 1], self.times[k], self.values[k]
        return v_a + (v_b - v_a) * (t - t_a) / (t_b - t_a) if t_b > t_a else v_b

    def integral(self, a: float, b: float) -> float:
        """Exact for both kinds: each piece is linear or constant, so its midpoint is its mean."""
        inside = [t for t in self.times if a < t < b]
        return sum(
            (t1 - t0) * self.value_at((t0 + t1) / 2)
            for t0, t1 in itertools.pairwise([a, *inside, b])
        )

    def uncertainty(self, a: float, b: float) -> float:
        """Range of the samples around each gap that [a, b] cuts into, x the part covered."""
        gaps = set()
        for edge in (a, b):
            k = bisect.bisect_left(self.times, edge)
            if 0 < k < len(self.times) and self.times[k] != edge:
                gaps.add(k)  # the edge lies strictly between samples k-1 and k
        total = 0.0
        for k in gaps:
            covered = min(b, self.times[k]) - max(a, self.times[k - 1])
            # A step value is the mean over its gap: its neighbours bound what it averaged.
            around = self.values[k - 1 : k + 2] if self.step else self.values[k - 1 : k + 1]
            total += (max(around) - min(around)) * max(covered, 0.0)
        return total


def _curve(trace: Trace, domain: DomainEnergy) -> tuple[_Curve, str] | None:
    rows = [r for r in trace.samples if r.device == domain.domain and r.power_w is not None]
    if len(rows) >= 2:
        return _Curve([r.t_s for r in rows], [float(r.power_w or 0.0) for r in rows], False), (
            f"power_w of {domain.domain}"
        )
    if domain.method != "estimated":
        return None
    rows = [
        r
        for r in trace.samples
        if r.device == _UTILISATION_DEVICE and r.utilisation_pct is not None
    ]
    if len(rows) < 2:
        return None
    values = [float(r.utilisation_pct or 0.0) for r in rows]
    return _Curve([r.t_s for r in rows], values, True), "utilisation_pct of this process"


@dataclass
class _Split:
    energy_j: float = 0.0
    uncertainty_j: float = 0.0


def phase_energy(
    energy: EnergyResult,
    trace: Trace,
    batches: Sequence[BatchTiming],
    requests: Sequence[RequestOutput],
    *,
    power_sources: Mapping[str, str] | None = None,
) -> PhaseEnergyResult | None:
    """Prefill and decode shares of the window's energy; None when they cannot be told apart.

    Measured domains are split when there are any, else estimated ones: the two are never
    summed. None when a domain to split has no curve in the trace. ``power_sources`` says
    per GPU what its trace power reads (``instant`` or ``averaged``); with an averaged one
    the phase energies are null (see the module's docstring).
    """
    t0, t1 = trace.marks.get("window_start"), trace.marks.get("window_end")
    timed = [b for b in batches if b.step_end_s]
    if t0 is None or t1 is None or t1 <= t0 or not timed:
        return None
    known = [d for d in energy.domains if d.energy_j is not None]
    chosen = [d for d in known if d.method != "estimated"] or known
    curves = [(d, _curve(trace, d)) for d in chosen]
    found = [(d, c[0], c[1]) for d, c in curves if c is not None]
    if not found or len(found) < len(curves):
        return None
    origin = trace.origin_s
    prefill_iv = [(b.start_s - origin, b.step_end_s[0] - origin) for b in timed]
    decode_iv = [(b.step_end_s[0] - origin, b.step_end_s[-1] - origin) for b in timed]
    sources = {d.domain: (power_sources or {}).get(d.domain) for d, _, _ in found}
    averaged = sorted(domain for domain, source in sources.items() if source == _AVERAGED)
    if averaged:
        return _unresolved(found, averaged, trace.interval_ms, (prefill_iv, decode_iv), requests)
    prefill, decode = _Split(), _Split()
    for domain, curve, _ in found:
        whole = curve.integral(t0, t1)
        if whole <= 0:
            return None
        scale = (domain.energy_j or 0.0) / whole
        for split, intervals in ((prefill, prefill_iv), (decode, decode_iv)):
            split.energy_j += scale * sum(curve.integral(a, b) for a, b in intervals)
            split.uncertainty_j += scale * sum(curve.uncertainty(a, b) for a, b in intervals)
    interval_s = trace.interval_ms / 1000.0
    n_prefill, n_decode = _token_counts(requests)
    phases = (
        _phase(prefill, prefill_iv, n_prefill, interval_s),
        _phase(decode, decode_iv, n_decode, interval_s),
    )
    return PhaseEnergyResult(
        energy_method=_weakest(found),
        domains=tuple(d.domain for d, _, _ in found),
        weights=", ".join(label for _, _, label in found),
        power_source=_INSTANT if _INSTANT in sources.values() else None,
        trace_interval_ms=trace.interval_ms,
        prefill=phases[0],
        decode=phases[1],
        other_j=sum(d.energy_j or 0.0 for d, _, _ in found) - prefill.energy_j - decode.energy_j,
        note=_note(phases, trace.interval_ms),
    )


def _weakest(found: Sequence[tuple[DomainEnergy, _Curve, str]]) -> EnergyMethod:
    methods = {d.method for d, _, _ in found}
    return next(m for m in _WEAKEST_FIRST if m in methods)


def _token_counts(requests: Sequence[RequestOutput]) -> tuple[int, int]:
    """Prompt tokens (prefill) and output tokens after each request's first (decode)."""
    return (
        sum(r.n_input_tokens for r in requests),
        sum(max(r.n_output_tokens - 1, 0) for r in requests),
    )


def _unresolved(
    found: Sequence[tuple[DomainEnergy, _Curve, str]],
    averaged: Sequence[str],
    interval_ms: int,
    intervals: tuple[list[tuple[float, float]], list[tuple[float, float]]],
    requests: Sequence[RequestOutput],
) -> PhaseEnergyResult:
    """The phases' times and tokens, with null energies: averaged power cannot split them."""
    phases = tuple(
        PhaseEnergy(
            energy_j=None,
            duration_s=sum(b - a for a, b in ivs),
            n_tokens=n_tokens,
            j_per_token=None,
            uncertainty_j=None,
            n_intervals=len(ivs),
            n_intervals_under_interval=sum(1 for a, b in ivs if b - a < _AVERAGING_S),
        )
        for ivs, n_tokens in zip(intervals, _token_counts(requests), strict=True)
    )
    return PhaseEnergyResult(
        energy_method=_weakest(found),
        domains=tuple(d.domain for d, _, _ in found),
        weights=", ".join(label for _, _, label in found),
        power_source=_AVERAGED,
        trace_interval_ms=interval_ms,
        prefill=phases[0],
        decode=phases[1],
        other_j=None,
        note=(
            f"no split: the trace's power of {', '.join(averaged)} is nvmlDeviceGetPowerUsage, "
            "a 1 s moving average (the GPU answers no instant power field), which lags a load "
            "change by up to a second and cannot place energy in prefill and decode phases; "
            f"{phases[0].n_intervals_under_interval} of {phases[0].n_intervals} prefill and "
            f"{phases[1].n_intervals_under_interval} of {phases[1].n_intervals} decode "
            "intervals are shorter than its 1 s"
        ),
    )


def _phase(
    split: _Split, intervals: list[tuple[float, float]], n_tokens: int, interval_s: float
) -> PhaseEnergy:
    return PhaseEnergy(
        energy_j=split.energy_j,
        duration_s=sum(b - a for a, b in intervals),
        n_tokens=n_tokens,
        j_per_token=split.energy_j / n_tokens if n_tokens else None,
        uncertainty_j=split.uncertainty_j,
        n_intervals=len(intervals),
        n_intervals_under_interval=sum(1 for a, b in intervals if b - a < interval_s),
    )


def _note(phases: tuple[PhaseEnergy, PhaseEnergy], interval_ms: int) -> str:
    text = (
        "window energy split in proportion to the trace curve over each batch's prefill "
        "(start -> first token) and decode (first -> last token); the rest is `other_j`"
    )
    for name, phase in zip(("prefill", "decode"), phases, strict=True):
        if phase.n_intervals_under_interval:
            text += (
                f"; {phase.n_intervals_under_interval} of {phase.n_intervals} {name} intervals "
                f"are shorter than the {interval_ms} ms sampling interval, so their share rests "
                f"on interpolation between samples (uncertainty ±{phase.uncertainty_j or 0:.3g} J)"
            )
    return text
