"""The ``nvml`` telemetry source: what each GPU in scope looks like at one instant.

Power comes from the POWER_INSTANT field where the GPU answers it (else from
``nvmlDeviceGetPowerUsage``, a 1 s average: :attr:`NvmlTelemetry.power_sources` says which),
so the trace shows load changes when they happen rather than a second later.

The NVML energy sampler can take its power samples from this source instead of polling
NVML in a thread of its own (:meth:`NvmlTelemetry.set_power_listener`): each read hands
the power it took, with its ``time.perf_counter`` instant, to the listener, so the process
has one thread that polls NVML.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from llenergymeasure.energy.nvml_api import load_nvml
from llenergymeasure.energy.nvml_readings import GpuReader, PowerSource
from llenergymeasure.energy.nvml_scope import open_scope
from llenergymeasure.energy.telemetry import DeviceSample
from llenergymeasure.errors import EnergyError

__all__ = ["NvmlTelemetry", "PowerListener"]

# (perf_counter instant of the read, power in W per ``gpu:N``; None where NVML refused)
PowerListener = Callable[[float, Mapping[str, float | None]], None]

_MIB = 1024 * 1024
# "clocks event reasons" is the newer name of "clocks throttle reasons"; the old entry
# point remains for older pynvml and drivers.
_REASON_CALLS = (
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
)


class NvmlTelemetry:
    """One :class:`DeviceSample` per GPU in scope per read.

    Scope, ``nvml`` and ``environ`` work as for :class:`~llenergymeasure.energy.nvml.NvmlSampler`.
    Building it initialises NVML (``EnergyError`` if that fails); :meth:`close` shuts it
    down. A reading NVML refuses (unsupported, missing, or a GPU that failed) is None in
    that sample; :meth:`read` never raises for NVML errors.
    """

    name = "nvml"

    def __init__(
        self,
        devices: Sequence[str] = ("cuda:0",),
        *,
        nvml: ModuleType | object | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        module = load_nvml(nvml)
        try:
            module.init()
        except Exception as err:
            raise EnergyError(f"NVML could not initialise: {err}") from err
        with module.shut_down_on_failure("NVML could not list the GPUs"):
            gpus, _ = open_scope(module, devices, environ if environ is not None else os.environ)
            self._readers = [GpuReader(module, gpu) for gpu in gpus]
        self._nvml = module
        self._open = True
        self._no_counter: set[int] = set()
        self._listener: PowerListener | None = None

    def devices(self) -> list[str]:
        """``gpu:N`` per GPU in scope, N being the NVML index."""
        return [reader.gpu.domain for reader in self._readers]

    @property
    def power_sources(self) -> dict[str, PowerSource]:
        """Per GPU, where its power readings come from: ``instant`` or ``averaged``."""
        return {reader.gpu.domain: reader.power_source for reader in self._readers}

    def set_power_listener(self, listener: PowerListener | None) -> None:
        """Hand every read's power to ``listener`` (None: to nobody)."""
        self._listener = listener

    def read(self) -> list[DeviceSample]:
        """Power, energy counter, temperature, SM clock, utilisation, memory, reason bits."""
        at_s = time.perf_counter()
        samples = [self._sample(reader) for reader in self._readers]
        listener = self._listener
        if listener is not None:
            listener(at_s, {sample.device: sample.power_w for sample in samples})
        return samples

    def close(self) -> None:
        """Shut NVML down (once)."""
        if self._open:
            self._open = False
            self._nvml.shutdown()

    def _sample(self, reader: GpuReader) -> DeviceSample:
        nvml, handle = self._nvml, reader.gpu.handle
        power_w = self._try(reader.power_w)
        energy_mj = None
        if reader.gpu.index not in self._no_counter:
            try:
                energy_mj = reader.counter_mj()
                if energy_mj is None:  # no counter on this GPU: stop asking
                    self._no_counter.add(reader.gpu.index)
            except nvml.errors:
                pass
        temperature = nvml.get(
            "nvmlDeviceGetTemperature", handle, _constant(nvml, "TEMPERATURE_GPU")
        )
        sm_clock = nvml.get("nvmlDeviceGetClockInfo", handle, _constant(nvml, "CLOCK_SM", 1))
        utilisation = nvml.get("nvmlDeviceGetUtilizationRates", handle)
        memory = nvml.get("nvmlDeviceGetMemoryInfo", handle)
        return DeviceSample(
            device=reader.gpu.domain,
            power_w=power_w,
            energy_j=None if energy_mj is None else energy_mj / 1000,
            temperature_c=None if temperature is None else float(temperature),
            sm_clock_mhz=None if sm_clock is None else float(sm_clock),
            utilisation_pct=_number(getattr(utilisation, "gpu", None)),
            memory_used_mib=_number(getattr(memory, "used", None), _MIB),
            throttle_reasons=self._reason_bits(handle),
        )

    def _try(self, read: Callable[[], float]) -> float | None:
        try:
            return read()
        except self._nvml.errors:
            return None

    def _reason_bits(self, handle: Any) -> int | None:
        for name in _REASON_CALLS:
            if self._nvml.has(name):
                reasons = self._nvml.get(name, handle)
                if reasons is not None:
                    return int(reasons)
        return None


def _constant(nvml: Any, name: str, default: int = 0) -> int:
    value = nvml.constant(f"NVML_{name}", default)
    return default if value is None else int(value)


def _number(value: object, divisor: float = 1.0) -> float | None:
    return float(value) / divisor if isinstance(value, int | float) else None
