"""One GPU's power, energy counter and clock-event counters, read as well as NVML allows.

Power: ``nvmlDeviceGetPowerUsage`` is a 1 s moving average on Ampere and Hopper (on an
H200 it equals the POWER_AVERAGE field and integrates the first second of a load step to
half its energy), so power is read from the POWER_INSTANT field where the GPU answers it
and from power usage, labelled ``averaged``, where it does not.

Clock-event reasons: NVML keeps a duration counter per reason (nvidia-smi's "Clocks Event
Reasons Counters"); read at both edges of a window they give the exact time each reason
was active, with no sampling.

Unit: nanoseconds. The SW power cap and sync boost counters are the perf-policy counters
(``NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP = NVML_FI_DEV_PERF_POLICY_POWER = 74``,
``_SYNC_BOOST = _PERF_POLICY_SYNC_BOOST = 76``), the field form of
``nvmlDeviceGetViolationStatus``, whose ``nvmlViolationTime_t.violationTime`` NVML's API
reference documents "in Nanoseconds"; nvidia-smi divides them for its µs display.

Field ids: 74 and 76 are stable, but the three slowdown counters are not.
nvidia-ml-py 13.x (pynvml.py, the CUDA 13 numbering) has SW_THERM_SLOWDOWN,
HW_THERM_SLOWDOWN and HW_POWER_BRAKE_SLOWDOWN at 269, 270, 271 and power smoothing at
251-268; older bindings have them at 251, 252, 253 and power smoothing from 256. They
are taken from the pynvml module in use, which should match its driver; a mismatch reads
another field, so :mod:`~llenergymeasure.energy.throttle` cross-checks every counter
against the sampled reason bits and falls back to the bits when they disagree grossly.
"""

from __future__ import annotations

from typing import Literal

from llenergymeasure.energy.nvml_api import Nvml, field_ids
from llenergymeasure.energy.nvml_scope import ScopedGpu

__all__ = [
    "AVERAGED",
    "INSTANT",
    "POWER_SOURCE_TEXT",
    "REASON_COUNTERS",
    "GpuReader",
    "PowerSource",
]

PowerSource = Literal["instant", "averaged"]
INSTANT: PowerSource = "instant"
AVERAGED: PowerSource = "averaged"
POWER_SOURCE_TEXT = {
    INSTANT: "the POWER_INSTANT field",
    AVERAGED: "nvmlDeviceGetPowerUsage, a 1 s moving average on Ampere and newer",
}
# reason (as named in results) -> the pynvml constant of its duration counter (ns, above)
REASON_COUNTERS = {
    "sw_power_cap": "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP",
    "sw_thermal_slowdown": "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN",
    "hw_thermal_slowdown": "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN",
    "hw_power_brake_slowdown": "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN",
}
_INSTANT_FIELD = 186  # NVML_FI_DEV_POWER_INSTANT, for modules that do not name it
_NS_PER_S = 1e9  # nvmlViolationTime_t.violationTime is in nanoseconds


class GpuReader:
    """Reads one GPU. Built once per GPU and window: it probes what the GPU answers."""

    def __init__(self, nvml: Nvml, gpu: ScopedGpu) -> None:
        self._nvml = nvml
        self.gpu = gpu
        self._instant_field = nvml.constant("NVML_FI_DEV_POWER_INSTANT") or _INSTANT_FIELD
        self.power_source: PowerSource = AVERAGED
        try:
            if self._read_instant_w() is not None:
                self.power_source = INSTANT
        except nvml.errors:
            pass  # the power reads that follow say what is wrong with the GPU
        self._reason_fields = field_ids(nvml, REASON_COUNTERS)

    def power_w(self) -> float:
        """Power now, from :attr:`power_source`; raises NVML's error when the GPU refuses."""
        if self.power_source == INSTANT:
            watts = self._read_instant_w()
            if watts is not None:
                return watts
        return int(self._nvml.call("nvmlDeviceGetPowerUsage", self.gpu.handle)) / 1000

    def counter_mj(self) -> int | None:
        """The total-energy counter in mJ; None where the GPU has none (pre-Volta, no call).

        Raises NVML's error when the GPU has a counter but fails to read it.
        """
        try:
            return int(self._nvml.call("nvmlDeviceGetTotalEnergyConsumption", self.gpu.handle))
        except BaseException as err:
            if self._nvml.is_not_supported(err):
                return None
            raise

    def reason_counters_s(self) -> dict[str, float]:
        """Seconds each clock-event reason has been active, for the counters the GPU keeps."""
        if not self._reason_fields:
            return {}
        try:
            values = self._nvml.field_values(self.gpu.handle, list(self._reason_fields.values()))
        except self._nvml.errors:
            return {}
        found = {}
        for reason, field_id in self._reason_fields.items():
            value = values.get(field_id)
            if value is not None:
                found[reason] = value / _NS_PER_S
        return found

    def _read_instant_w(self) -> float | None:
        milliwatts = self._nvml.field_values(self.gpu.handle, [self._instant_field]).get(
            self._instant_field
        )
        return None if milliwatts is None else milliwatts / 1000
