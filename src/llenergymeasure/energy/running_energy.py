"""Energy so far: what the power trace's devices have used since a mark, kept as it samples.

A live figure for progress displays, not a measurement of record: the window's energy
comes from the energy sampler (``begin``/``end``). Per device it is the difference of
the device's own cumulative counter since the mark (``counter``) or, for a device
without one, the trapezoidal integral of its power readings (``integrated``). Every
sample costs a few arithmetic operations, and a reading costs one pass over the
devices, so it is cheap enough to read at each batch of the measured window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from llenergymeasure.energy.telemetry import DeviceSample

__all__ = ["EnergySoFar", "RunningEnergy"]

EnergySoFarMethod = Literal["counter", "integrated"]


@dataclass(frozen=True)
class EnergySoFar:
    """Joules the traced devices used since a mark, and how that figure was obtained
    (``integrated`` when any device's part was integrated from power)."""

    energy_j: float
    method: EnergySoFarMethod
    n_devices: int


@dataclass
class _Device:
    counter_j: float | None = None  # the latest counter reading
    integral_j: float = 0.0  # power integrated since the first reading with power
    last_power: tuple[float, float] | None = None  # (t_s, power_w) of the latest reading
    has_power: bool = False


# Per device at a mark: (counter_j, integral_j, had power readings by then).
Snapshot = dict[str, tuple[float | None, float, bool]]


class RunningEnergy:
    """Running per-device totals fed sample by sample (see the module docstring).

    Not thread-safe on its own: the trace calls it under its lock.
    """

    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}

    def add(self, t_s: float, sample: DeviceSample) -> None:
        """Take in one device's reading at trace time ``t_s``."""
        if sample.energy_j is None and sample.power_w is None:
            return  # a device that reports no energy (the process, a failed read)
        device = self._devices.setdefault(sample.device, _Device())
        if sample.energy_j is not None and math.isfinite(sample.energy_j):
            device.counter_j = sample.energy_j
        power_w = sample.power_w
        if power_w is None or not math.isfinite(power_w):
            return
        if device.last_power is not None and t_s > device.last_power[0]:
            last_t_s, last_w = device.last_power
            device.integral_j += (last_w + power_w) / 2.0 * (t_s - last_t_s)
        device.last_power = (t_s, power_w)
        device.has_power = True

    def snapshot(self) -> Snapshot:
        """Each device's totals now, to subtract later."""
        return {name: (d.counter_j, d.integral_j, d.has_power) for name, d in self._devices.items()}

    def since(self, mark: Snapshot) -> EnergySoFar | None:
        """The energy used since ``mark``; None when no device has a figure for it."""
        total_j = 0.0
        n_devices = 0
        methods: set[EnergySoFarMethod] = set()
        for name, (counter_at_j, integral_at_j, had_power) in mark.items():
            device = self._devices[name]
            if counter_at_j is not None and device.counter_j is not None:
                # A counter that went backwards (a driver reset) has no figure.
                if device.counter_j < counter_at_j:
                    continue
                total_j += device.counter_j - counter_at_j
                methods.add("counter")
            elif had_power:
                total_j += device.integral_j - integral_at_j
                methods.add("integrated")
            else:
                continue
            n_devices += 1
        if not methods:
            return None
        method: EnergySoFarMethod = "integrated" if "integrated" in methods else "counter"
        return EnergySoFar(energy_j=total_j, method=method, n_devices=n_devices)
