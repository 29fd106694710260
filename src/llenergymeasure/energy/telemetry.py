"""Telemetry: what a device reports at one instant, and the protocol of a source of it.

Energy samplers answer "how many joules in the window"; telemetry sources answer
"what does each device look like right now" (power, cumulative energy,
temperature, clocks, throttle reasons). The background trace polls sources.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["DeviceSample", "TelemetrySource", "close_sources"]


@dataclass(frozen=True, slots=True)
class DeviceSample:
    """One device at one instant; every reading the device cannot give is None.

    ``energy_j`` is the device's own cumulative counter in joules (any origin; only
    differences are meaningful), or None where the device has no counter.
    ``throttle_reasons`` holds NVML clock-event reason bits (0 = not throttled).
    """

    device: str
    power_w: float | None = None
    energy_j: float | None = None
    temperature_c: float | None = None
    sm_clock_mhz: float | None = None
    utilisation_pct: float | None = None
    memory_used_mib: float | None = None
    throttle_reasons: int | None = None


@runtime_checkable
class TelemetrySource(Protocol):
    """Something the trace can poll: a set of GPUs, the RAPL domains, this process."""

    name: str

    def devices(self) -> list[str]:
        """The device names this source reports, e.g. ``["gpu:0", "gpu:1"]``."""
        ...

    def read(self) -> list[DeviceSample]:
        """One sample per device, now. Must be fast (it runs every sampling period)."""
        ...

    def close(self) -> None:
        """Release vendor handles."""
        ...


def close_sources(sources: Sequence[TelemetrySource]) -> None:
    """Close every source, even when one of them fails to close."""
    for source in sources:
        with contextlib.suppress(Exception):
            source.close()
