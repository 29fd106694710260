"""NVIDIA GPUs through NVML: the ``nvml`` energy sampler.

Per GPU in scope, the window's energy is the total-energy counter
(``nvmlDeviceGetTotalEnergyConsumption``, mJ, Volta and newer) read at ``begin`` and
``end`` (``method: counter``). A background poller samples power every
``poll_interval_s`` from the POWER_INSTANT field (``nvmlDeviceGetPowerUsage``, a 1 s
moving average, where the GPU has no such field, labelled ``averaged``); their trapezoid
integral is the cross-check, recorded with its gap to the counter, and the figure for GPUs
without a counter (``method: integrated``). Fed by the trace's NVML telemetry
(:meth:`NvmlSampler.take_power_from`), it starts no poller and keeps the power the trace
reads instead, so that one thread polls NVML in the engine's process. NVML's per-reason
duration counters, read at both edges, give the seconds each clock-event reason was active.

The GPUs in scope follow the engine's placement: ``cuda:N`` is the N-th GPU this
process's CUDA sees (see :mod:`llenergymeasure.energy.nvml_scope`). Domains are named by
NVML index (``gpu:2`` is the physical GPU NVML numbers 2, whatever CUDA calls it) and
identified by UUID.

pynvml is imported when a sampler is probed or begun, or a telemetry source built,
never at import. Every entry point takes ``nvml=``: the pynvml module by default,
or a :class:`~llenergymeasure.testing.simulated_nvml.SimulatedNvml`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from llenergymeasure.energy.base import Availability, EnergyReading, SamplerWarning
from llenergymeasure.energy.nvml_api import PYNVML_MISSING, Nvml, load_nvml
from llenergymeasure.energy.nvml_domain import GpuWindow, domain_result
from llenergymeasure.energy.nvml_readings import GpuReader
from llenergymeasure.energy.nvml_scope import gpu_indices_in_scope, open_scope, order_warning
from llenergymeasure.energy.nvml_telemetry import NvmlTelemetry
from llenergymeasure.errors import EnergyError
from llenergymeasure.records.energy import Confidence, DomainEnergy

__all__ = ["PYNVML_MISSING", "NvmlSampler", "NvmlTelemetry", "gpu_indices_in_scope"]

# How long end() waits for the power poller to stop. The poller wakes at once when
# told to stop; only an NVML call that hangs could keep it longer, and then its
# later samples are dropped rather than the run held up.
_JOIN_TIMEOUT_S = 1.0


@dataclass
class _Window:
    nvml: Nvml
    gpus: list[GpuWindow]
    begin_s: float
    driver_version: str | None
    cuda_visible_devices: str | None
    order_warning: str | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    n_polls: int = 0
    closed: bool = False
    poller_error: str | None = None


class NvmlSampler:
    """Energy of the GPUs the engine uses, from NVML: counters first, integrated power second.

    ``devices`` are the engine's device strings (``["cuda:0", "cuda:1"]``);
    ``environ`` supplies ``CUDA_VISIBLE_DEVICES`` (default: ``os.environ``, read at
    ``probe``/``begin``). ``clock`` times the power samples and the window.
    ``poll_interval_s=None`` starts no poller thread: the caller takes each power
    sample with :meth:`sample_power` (deterministic tests drive it this way).
    """

    name = "nvml"
    # the GPU's own counter includes its idle power, so a baseline applies
    needs_baseline = True

    def __init__(
        self,
        devices: Sequence[str] = ("cuda:0",),
        *,
        nvml: ModuleType | object | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        poll_interval_s: float | None = 0.1,
    ) -> None:
        if poll_interval_s is not None and not poll_interval_s > 0:
            raise EnergyError(f"nvml sampler: poll_interval_s must be > 0, got {poll_interval_s}")
        self.devices = tuple(devices)
        self.poll_interval_s = poll_interval_s
        self._nvml = nvml
        self._environ = environ
        self._clock = clock
        self._window: _Window | None = None
        self._feed: NvmlTelemetry | None = None

    def take_power_from(self, telemetry: NvmlTelemetry) -> None:
        """Take power samples from ``telemetry``'s reads (the trace's) instead of a poller.

        Both must read the same clock (``time.perf_counter``). Outside a running trace the
        window then has a power sample at each edge only; the counter is unaffected.
        """
        if self._clock is not time.perf_counter:
            raise EnergyError("nvml sampler: a fed sampler must time samples by perf_counter")
        self._feed = telemetry

    def probe(self) -> Availability:
        """Available when NVML initialises and at least one GPU is in scope; else the reason."""
        try:
            nvml = load_nvml(self._nvml)
            nvml.init()
        except EnergyError as err:
            return Availability(False, err.message)
        except Exception as err:  # the module's own error, or a stand-in without nvmlInit
            return Availability(False, f"NVML could not initialise: {err}")
        try:
            gpus, _ = open_scope(nvml, self.devices, self._env())
            readers = [GpuReader(nvml, gpu) for gpu in gpus]
            counters = {r.gpu.domain: r.counter_mj() is not None for r in readers}
            averaged = [r.gpu.domain for r in readers if r.power_source == "averaged"]
            driver = nvml.driver_version()
        except EnergyError as err:
            return Availability(False, err.message)
        except nvml.errors as err:
            return Availability(False, f"NVML error: {err}")
        finally:
            nvml.shutdown()
        return Availability(True, _probe_reason(counters, averaged), version=driver)

    def begin(self) -> None:
        """Initialise NVML, read each GPU's counters, take a power sample, start the poller."""
        if self._window is not None:
            raise EnergyError("nvml sampler: begin() called twice without end()")
        nvml = load_nvml(self._nvml)
        try:
            nvml.init()
        except Exception as err:
            raise EnergyError(
                f"NVML could not initialise: {err}",
                hint="check the NVIDIA driver with `nvidia-smi`",
            ) from err
        environ = self._env()
        with nvml.shut_down_on_failure("NVML failed at the window's start"):
            gpus, all_names = open_scope(nvml, self.devices, environ)
            windows = [GpuWindow(GpuReader(nvml, gpu)) for gpu in gpus]
            driver = nvml.driver_version()
            for gpu_window in windows:
                gpu_window.reasons_start_s = gpu_window.reader.reason_counters_s()
            # the counters last, right before the window's clock starts: each NVML call
            # takes ~1 ms, and the figure is divided by this window's length
            for gpu_window in windows:
                gpu_window.counter_start_mj = gpu_window.reader.counter_mj()
        window = _Window(
            nvml=nvml,
            gpus=windows,
            begin_s=self._clock(),
            driver_version=driver,
            cuda_visible_devices=environ.get("CUDA_VISIBLE_DEVICES"),
            order_warning=order_warning(environ, all_names),
        )
        self._poll(window, initial=True)
        if self._feed is not None:
            self._window = window
            self._feed.set_power_listener(self._take_power)
            return
        if self.poll_interval_s is not None:
            window.thread = threading.Thread(
                target=self._run_poller,
                args=(window, self.poll_interval_s),
                name="llem-nvml-power",
                daemon=True,  # never keeps the interpreter alive if end() is not reached
            )
            window.thread.start()
        self._window = window

    def sample_power(self) -> None:
        """Read every in-scope GPU's power now and add it to the window's trace.

        The poller thread calls this every ``poll_interval_s``; with
        ``poll_interval_s=None`` the caller does.
        """
        window = self._window
        if window is None:
            raise EnergyError("nvml sampler: sample_power() called outside a window")
        self._poll(window)

    def end(self) -> EnergyReading:
        """Stop the poller, take the last power sample and counters, and return the reading.

        A GPU that fails mid-window does not fail the run: its figure is the power
        integrated over the part of the window it answered (or None), and a
        warning says it is partial.
        """
        window = self._window
        if window is None:
            raise EnergyError("nvml sampler: end() called without begin()")
        self._window = None
        if self._feed is not None:
            self._feed.set_power_listener(None)
        warnings: list[str | SamplerWarning] = []
        window.stop.set()
        if window.thread is not None:
            window.thread.join(timeout=_JOIN_TIMEOUT_S)
            if window.thread.is_alive():
                warnings.append(
                    f"the NVML power poller did not stop within {_JOIN_TIMEOUT_S:.0f} s "
                    "(an NVML call hung); its later samples are ignored"
                )
        with window.lock:
            window.closed = True
        try:
            self._poll(window, final=True)
            end_s = self._clock()  # right before the counters, as at the start
            counters = [self._counter_at_end(gpu) for gpu in window.gpus]
            ends = list(
                zip(counters, [g.reader.reason_counters_s() for g in window.gpus], strict=True)
            )
        finally:
            window.nvml.shutdown()
        return self._reading(window, ends, end_s - window.begin_s, warnings)

    def _reading(
        self,
        window: _Window,
        ends: list[tuple[int | None, dict[str, float]]],
        duration_s: float,
        warnings: list[str | SamplerWarning],
    ) -> EnergyReading:
        domains: list[DomainEnergy] = []
        devices: dict[str, dict[str, Any]] = {}
        for gpu, (counter_end_mj, reasons_end_s) in zip(window.gpus, ends, strict=True):
            domain, detail, found = domain_result(
                gpu, counter_end_mj, reasons_end_s, duration_s, self.name
            )
            domains.append(domain)
            devices[domain.domain] = detail
            warnings.extend(found)
        if window.poller_error is not None:
            warnings.append(f"the NVML power poller stopped early: {window.poller_error}")
        if window.order_warning is not None:
            warnings.append(window.order_warning)
        partial = any(d["partial"] for d in devices.values())
        return EnergyReading(
            sampler=self.name,
            domains=tuple(domains),
            duration_s=duration_s,
            n_samples=window.n_polls,
            confidence=_confidence(domains, devices, partial),
            details={
                "devices": devices,
                "poll_interval_s": None if self._feed is not None else self.poll_interval_s,
                "power_polled_by": "the trace" if self._feed is not None else "this sampler",
                "cuda_visible_devices": window.cuda_visible_devices,
                "driver_version": window.driver_version,
                "partial": partial,
            },
            warnings=tuple(warnings),
        )

    def _env(self) -> Mapping[str, str]:
        return self._environ if self._environ is not None else os.environ

    def _run_poller(self, window: _Window, interval_s: float) -> None:
        # Event.wait, not sleep: end() wakes the poller at once.
        while not window.stop.wait(interval_s):
            try:
                self._poll(window)
            except Exception as err:  # a dead poller must not hide why it died
                window.poller_error = f"{type(err).__name__}: {err}"
                return

    def _poll(self, window: _Window, *, initial: bool = False, final: bool = False) -> float:
        """One power sample of every GPU; returns its clock time."""
        now_s = self._clock()
        readings: list[tuple[GpuWindow, float | None, str | None]] = []
        for gpu in window.gpus:
            try:
                readings.append((gpu, gpu.reader.power_w(), None))
            except window.nvml.errors as err:
                readings.append((gpu, None, f"power read at {now_s - window.begin_s:.2f} s: {err}"))
        self._record(window, now_s, readings, initial=initial, final=final)
        return now_s

    def _take_power(self, at_s: float, power_w: Mapping[str, float | None]) -> None:
        """The power the trace's telemetry read at ``at_s``, for the open window's GPUs."""
        window = self._window
        if window is None or at_s < window.begin_s:  # a read begun before the window
            return
        readings: list[tuple[GpuWindow, float | None, str | None]] = [
            (gpu, power_w[gpu.reader.gpu.domain], None)
            if power_w.get(gpu.reader.gpu.domain) is not None
            else (gpu, None, f"power read by the trace at {at_s - window.begin_s:.2f} s failed")
            for gpu in window.gpus
        ]
        self._record(window, at_s, readings)

    def _record(
        self,
        window: _Window,
        now_s: float,
        readings: Sequence[tuple[GpuWindow, float | None, str | None]],
        *,
        initial: bool = False,
        final: bool = False,
    ) -> None:
        with window.lock:
            if window.closed and not final:
                return
            window.n_polls += 1
            for gpu, power_w, error in readings:
                if power_w is not None:
                    gpu.samples.append((now_s, power_w))
                elif error is not None:
                    gpu.note_error(error)
                gpu.last_poll_ok = power_w is not None
                if initial:
                    gpu.first_poll_ok = power_w is not None

    def _counter_at_end(self, gpu: GpuWindow) -> int | None:
        if gpu.counter_start_mj is None:
            return None
        try:
            return gpu.reader.counter_mj()
        except Exception as err:  # NVML's error: the figure falls back to integration
            gpu.note_error(f"energy counter read at the window's end: {err}")
            return None


def _probe_reason(counters: dict[str, bool], averaged: Sequence[str]) -> str:
    with_counter = [d for d, has in counters.items() if has]
    without = [d for d, has in counters.items() if not has]
    parts = []
    if with_counter:
        parts.append(f"total-energy counter on {', '.join(with_counter)}")
    if without:
        parts.append(f"integrated power on {', '.join(without)} (no energy counter)")
    if averaged:
        parts.append(
            f"no instant power field on {', '.join(averaged)}: power samples are "
            "nvmlDeviceGetPowerUsage, a 1 s average"
        )
    return "NVML: " + "; ".join(parts)


def _confidence(
    domains: Sequence[DomainEnergy], devices: Mapping[str, Mapping[str, Any]], partial: bool
) -> Confidence:
    if partial or any(d.energy_j is None for d in domains):
        return "low"
    integrated = [d for d in domains if d.method == "integrated"]
    if any(devices[d.domain]["power_source"] == "averaged" for d in integrated):
        return "low"
    return "medium" if integrated else "high"
