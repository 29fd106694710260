"""One simulated NVIDIA GPU: what it is (:class:`SimulatedGpu`) and how it behaves over time.

The behaviour is the one NVML showed on a real H200 (``testing/h200.py`` holds the
calibration):

- The board draws ``idle_w`` with no CUDA context, ``idle_w + context_w`` while any
  process holds a context, plus ``busy_w`` while work runs, never more than the power
  limit less ``cap_headroom_w`` (the H200 held 685 W at its 700 W limit).
- The sensors publish every ``update_period_s``: the total-energy counter (the exact
  integral of the board's power) at its own ticks, and at the power ticks the instant
  power (the POWER_INSTANT field) and its moving average over ``average_window_s``
  (``nvmlDeviceGetPowerUsage``, the POWER_AVERAGE field). A reading returns the value of
  the last tick, so a 1 s window of a load step reads about half its energy in averaged
  power.
- Clock-event reasons: GPU idle (0x1) with no context and no work, SW power cap (0x4)
  while the demand exceeds the cap; per-reason duration counters (in ns) accumulate the
  time each reason was active.
- Temperature follows power with a first-order lag.

``power_w`` replaces the whole power model with a script of the board's true power (no
cap, no automatic reason bits: only the scripted ``throttle_reasons``).
Script time ``t`` is seconds since the simulation was built; every scripted quantity is a
constant or a function of ``t``.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from llenergymeasure.testing.simulated_nvml_errors import NVMLError, NVMLError_GpuIsLost

__all__ = ["REASON_BITS_COUNTED", "REASON_FIELDS", "GpuPhysics", "Script", "SimulatedGpu"]

Script = Callable[[float], float] | float

GPU_IDLE = 0x1
SW_POWER_CAP = 0x4
# The reasons NVML keeps a duration counter for (field values), as bits.
REASON_BITS_COUNTED = (0x4, 0x10, 0x20, 0x40, 0x80)
# Field ids as nvidia-ml-py 13 numbers them: power, and reason duration counters -> their bit.
FIELD_POWER_AVERAGE = 185
FIELD_POWER_INSTANT = 186
REASON_FIELDS = {74: 0x4, 76: 0x10, 269: 0x20, 270: 0x40, 271: 0x80}
_THERMAL_STEP_S = 0.01
_TICK_EPSILON = 1e-9


@dataclass(frozen=True)
class SimulatedGpu:
    """One scripted GPU (defaults: an H200 SXM as NVML reported it, see ``testing/h200.py``).

    ``has_energy_counter=False`` makes the total-energy counter answer
    ``NVMLError_NotSupported`` (pre-Volta GPUs); ``has_power_fields`` and
    ``has_reason_counters`` do the same for the power and duration field values.
    From ``t >= fail_after_s`` every query on this GPU raises ``fail_with``.
    ``mig_mode`` / ``ecc_enabled`` of None mean the GPU does not support the feature.
    ``reason_counter_units_per_s`` is how many counter units make a second: NVML's 1e9
    (nanoseconds); another value plays a driver whose counters read in another unit.
    ``update_period_s=None`` publishes every reading continuously (no sensor ticks).
    Scripted ``temperature_c``, ``sm_clock_mhz``, ``utilisation_pct`` and
    ``memory_used_mib`` replace the modelled ones.
    """

    name: str
    uuid: str
    power_w: Script | None = None
    idle_w: float = 80.0
    context_w: float = 40.0
    busy_w: Script = 620.0
    busy: Callable[[float], bool] | bool = False
    cap_headroom_w: float = 15.0
    has_energy_counter: bool = True
    has_power_fields: bool = True
    has_reason_counters: bool = True
    reason_counter_units_per_s: float = 1e9
    temperature_c: Script | None = None
    sm_clock_mhz: Script | None = None
    utilisation_pct: Script | None = None
    memory_used_mib: Script | None = None
    memory_total_mib: int = 143_771
    throttle_reasons: Callable[[float], int] | int = 0
    fail_after_s: float | None = None
    fail_with: type[NVMLError] = NVMLError_GpuIsLost
    energy_counter_start_mj: int = 0
    power_limit_w: float = 700.0
    default_power_limit_w: float = 700.0
    persistence_mode: bool = True
    mig_mode: bool | None = False
    ecc_enabled: bool | None = True
    compute_capability: tuple[int, int] = (9, 0)
    update_period_s: float | None = 0.1
    counter_phase_s: float = 0.02
    power_phase_s: float = 0.075
    average_window_s: float = 1.0
    idle_temperature_c: float = 48.0
    temperature_c_per_w: float = 0.039
    thermal_time_constant_s: float = 1.5

    @property
    def cap_w(self) -> float:
        """The most the board draws: its power limit less the headroom the controller keeps."""
        return self.power_limit_w - self.cap_headroom_w


@dataclass(frozen=True)
class _State:
    """What holds from ``t`` until the next event."""

    t: float
    contexts: tuple[tuple[int, int, float], ...]  # (context id, pid, MiB)
    busy: bool


class GpuPhysics:
    """The simulated GPU over script time. Not thread-safe: the owner holds its lock."""

    def __init__(self, spec: Callable[[], SimulatedGpu], step_s: float) -> None:
        self._spec = spec
        self._step_s = step_s
        self._states = [_State(0.0, (), False)]
        self._next_context = 1
        self._energy = (0.0, 0.0)  # (integrated up to t, joules up to then)
        self._reasons = (0.0, dict.fromkeys(REASON_BITS_COUNTED, 0.0))
        self._averages: dict[int, float] = {}
        self._thermal: tuple[float, float] | None = None

    # --- events ------------------------------------------------------------------------

    def open_context(self, t: float, pid: int, used_mib: float) -> int:
        """A process opens a CUDA context (holding ``used_mib``); returns its id."""
        context = self._next_context
        self._next_context += 1
        now = self._states[-1]
        self._push(t, (*now.contexts, (context, pid, used_mib)), now.busy)
        return context

    def close_context(self, t: float, context: int) -> None:
        """The context ends (the process exited or released the GPU)."""
        now = self._states[-1]
        self._push(t, tuple(c for c in now.contexts if c[0] != context), now.busy)

    def set_busy(self, t: float, busy: bool) -> None:
        """Work starts or stops on the GPU."""
        self._push(t, self._states[-1].contexts, busy)

    def processes(self) -> tuple[tuple[int, float], ...]:
        """(pid, MiB) of every open context, in the order they opened."""
        return tuple((pid, mib) for _, pid, mib in self._states[-1].contexts)

    # --- the board --------------------------------------------------------------------

    def demand_w(self, t: float) -> float:
        """What the work asks for at ``t``, before the power cap."""
        spec = self._spec()
        if spec.power_w is not None:
            return _at(spec.power_w, t)
        state = self._state(t)
        watts = spec.idle_w + (spec.context_w if state.contexts else 0.0)
        return watts + (_at(spec.busy_w, t) if self._is_busy(state, t) else 0.0)

    def power_w(self, t: float) -> float:
        """The board's true power at ``t``: a scripted ``power_w`` as is, else capped demand."""
        spec = self._spec()
        if spec.power_w is not None:
            return _at(spec.power_w, t)
        return min(self.demand_w(t), spec.cap_w)

    def reasons(self, t: float) -> int:
        """The clock-event reason bits active at ``t``."""
        spec = self._spec()
        scripted = spec.throttle_reasons
        bits = int(scripted(t)) if callable(scripted) else int(scripted)
        if spec.power_w is not None:
            return bits
        if self.demand_w(t) > spec.cap_w:
            bits |= SW_POWER_CAP
        state = self._state(t)
        if not state.contexts and not self._is_busy(state, t):
            bits |= GPU_IDLE
        return bits

    def energy_j(self, t: float) -> float:
        """Joules the board used between script time 0 and ``t`` (the ground truth)."""
        done_s, done_j = self._energy
        if t < done_s:
            return done_j - self._integral(self.power_w, t, done_s)
        done_j += self._integral(self.power_w, done_s, t)
        self._energy = (t, done_j)
        return done_j

    # --- what the sensors publish ------------------------------------------------------

    def counter_mj(self, t: float) -> int:
        """The total-energy counter as published at the last counter tick."""
        spec = self._spec()
        tick = self._last_tick(t, spec.counter_phase_s)
        return spec.energy_counter_start_mj + math.floor(self.energy_j(tick) * 1000)

    def instant_w(self, t: float) -> float:
        """POWER_INSTANT: the board's power at the last power tick."""
        return self.power_w(self._last_tick(t, self._spec().power_phase_s))

    def average_w(self, t: float) -> float:
        """POWER_AVERAGE and ``nvmlDeviceGetPowerUsage``: the moving average at the last tick."""
        spec = self._spec()
        tick = self._last_tick(t, spec.power_phase_s)
        if spec.update_period_s is None:
            return self.power_w(tick)
        key = round((tick - spec.power_phase_s) / spec.update_period_s)
        if key not in self._averages:
            start = max(tick - spec.average_window_s, 0.0)
            span = tick - start
            value = (self.energy_j(tick) - self.energy_j(start)) / span if span > 0 else None
            self._averages[key] = self.power_w(tick) if value is None else value
        return self._averages[key]

    def reason_ns(self, t: float, bit: int) -> int:
        """The duration counter of one reason: nanoseconds it was active since time 0."""
        done_s, seconds = self._reasons
        if t > done_s:
            seconds = dict(seconds)
            for lo, hi in self._segments(done_s, t):
                for reason in REASON_BITS_COUNTED:
                    active = functools.partial(self._active, reason)
                    seconds[reason] += self._integral(active, lo, hi)
            self._reasons = (t, seconds)
        return round(self._reasons[1][bit] * self._spec().reason_counter_units_per_s)

    def field(self, field_id: int, t: float) -> float | int | None:
        """A field value: power in W (float), a duration counter in ns (int), None unsupported."""
        spec = self._spec()
        if field_id in (FIELD_POWER_INSTANT, FIELD_POWER_AVERAGE):
            if not spec.has_power_fields:
                return None
            return self.instant_w(t) if field_id == FIELD_POWER_INSTANT else self.average_w(t)
        bit = REASON_FIELDS.get(field_id)
        if bit is None or not spec.has_reason_counters:
            return None
        return self.reason_ns(t, bit)

    # --- the rest of the board's state --------------------------------------------------

    def temperature_c(self, t: float) -> float:
        """Scripted, or a first-order lag towards idle temperature + power x °C per watt."""
        spec = self._spec()
        if spec.temperature_c is not None:
            return _at(spec.temperature_c, t)
        if self._thermal is None:
            self._thermal = (0.0, self._settled_c(0.0))
        done_s, celsius = self._thermal
        while done_s + _THERMAL_STEP_S <= t:
            done_s += _THERMAL_STEP_S
            settled = self._settled_c(done_s)
            celsius += (settled - celsius) * _THERMAL_STEP_S / spec.thermal_time_constant_s
        self._thermal = (done_s, celsius)
        return celsius

    def sm_clock_mhz(self, t: float) -> float:
        """Scripted, or 345 MHz parked, 1,980 MHz boosted, ~1,500 MHz at the power cap."""
        spec = self._spec()
        if spec.sm_clock_mhz is not None:
            return _at(spec.sm_clock_mhz, t)
        if spec.power_w is None and self.demand_w(t) > spec.cap_w:
            return 1500.0
        if spec.power_w is not None:
            return 1980.0
        state = self._state(t)
        return 1980.0 if state.contexts or self._is_busy(state, t) else 345.0

    def utilisation_pct(self, t: float) -> float:
        """Scripted, or 100 % while busy and 0 % otherwise."""
        spec = self._spec()
        if spec.utilisation_pct is not None:
            return _at(spec.utilisation_pct, t)
        return 100.0 if self._is_busy(self._state(t), t) else 0.0

    def memory_used_mib(self, t: float) -> float:
        """Scripted, or the memory the open contexts hold."""
        spec = self._spec()
        if spec.memory_used_mib is not None:
            return _at(spec.memory_used_mib, t)
        return sum(mib for _, _, mib in self._state(t).contexts)

    # --- internals ---------------------------------------------------------------------

    def _push(self, t: float, contexts: tuple[tuple[int, int, float], ...], busy: bool) -> None:
        t = max(t, self._states[-1].t)
        if self._states[-1].t == t:
            self._states[-1] = _State(t, contexts, busy)
        else:
            self._states.append(_State(t, contexts, busy))

    def _state(self, t: float) -> _State:
        index = bisect.bisect_right([s.t for s in self._states], t) - 1
        return self._states[max(index, 0)]

    def _active(self, bit: int, t: float) -> float:
        return 1.0 if self.reasons(t) & bit else 0.0

    def _is_busy(self, state: _State, t: float) -> bool:
        scripted = self._spec().busy
        return state.busy or (scripted(t) if callable(scripted) else scripted)

    def _settled_c(self, t: float) -> float:
        spec = self._spec()
        return spec.idle_temperature_c + (self.power_w(t) - spec.idle_w) * spec.temperature_c_per_w

    def _last_tick(self, t: float, phase_s: float) -> float:
        period = self._spec().update_period_s
        if period is None:
            return t
        k = math.floor((t - phase_s) / period + _TICK_EPSILON)
        return max(phase_s + k * period, 0.0)

    def _segments(self, a: float, b: float) -> Iterator[tuple[float, float]]:
        """[a, b] cut at every event, so the state is fixed inside each piece."""
        cuts = [s.t for s in self._states if a < s.t < b]
        edges = [a, *cuts, b]
        for lo, hi in itertools.pairwise(edges):
            if hi > lo:
                yield lo, hi

    def _constant_inside(self, t: float) -> bool:
        spec = self._spec()
        if callable(spec.throttle_reasons) or callable(spec.busy):
            return False
        if spec.power_w is not None:
            return not callable(spec.power_w)
        return not (self._is_busy(self._state(t), t) and callable(spec.busy_w))

    def _integral(self, f: Callable[[float], float], a: float, b: float) -> float:
        """∫ f over [a, b]: exact where the state is constant, else composite Simpson."""
        total = 0.0
        for lo, hi in self._segments(a, b):
            if self._constant_inside(lo):
                total += f(lo) * (hi - lo)
            else:
                total += _simpson(f, lo, hi, self._step_s)
        return total


def _at(script: Script, t: float) -> float:
    return float(script(t)) if callable(script) else float(script)


def _simpson(f: Callable[[float], float], a: float, b: float, step_s: float) -> float:
    """Composite Simpson integral of ``f`` over [a, b] with at most ``step_s`` per interval."""
    if b <= a:
        return 0.0
    n = max(2, math.ceil((b - a) / step_s))
    n += n % 2
    h = (b - a) / n
    odd = sum(f(a + k * h) for k in range(1, n, 2))
    even = sum(f(a + k * h) for k in range(2, n, 2))
    return h / 3 * (f(a) + f(b) + 4 * odd + 2 * even)
