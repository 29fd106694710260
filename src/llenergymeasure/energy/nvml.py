"""NVIDIA GPUs through NVML: the ``nvml`` energy sampler and the ``nvml`` telemetry source.

Per GPU in scope, the window's energy is the total-energy counter
(``nvmlDeviceGetTotalEnergyConsumption``, mJ, Volta and newer) read at ``begin`` and
``end`` (``method: counter``). A background poller samples power
(``nvmlDeviceGetPowerUsage``, mW) every ``poll_interval_s``; the trapezoid integral
of those samples is the cross-check, recorded with its gap to the counter, and the
figure for GPUs without a counter (``method: integrated``).

The GPUs in scope follow the engine's placement: ``cuda:N`` is the N-th GPU this
process's CUDA sees (see :func:`gpu_indices_in_scope`). Domains are named by NVML
index (``gpu:2`` is the physical GPU NVML numbers 2, whatever CUDA calls it) and
identified by UUID in the details.

pynvml is imported when a sampler is probed or begun, or a telemetry source built,
never at import. Every entry point takes ``nvml=``: the pynvml module by default,
or a :class:`~llenergymeasure.testing.simulated_nvml.SimulatedNvml`.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

from llenergymeasure.energy.base import Availability, EnergyReading
from llenergymeasure.energy.telemetry import DeviceSample
from llenergymeasure.errors import EnergyError
from llenergymeasure.records.energy import DomainEnergy

__all__ = ["PYNVML_MISSING", "NvmlSampler", "NvmlTelemetry", "gpu_indices_in_scope"]

PYNVML_MISSING = "pynvml not installed: pip install nvidia-ml-py"

_MIB = 1024 * 1024
# How long end() waits for the power poller to stop. The poller wakes at once when
# told to stop; only an NVML call that hangs could keep it longer, and then its
# later samples are dropped rather than the run held up.
_JOIN_TIMEOUT_S = 1.0
_KEPT_ERRORS = 5


def gpu_indices_in_scope(
    devices: Sequence[str], environ: Mapping[str, str], uuids: Sequence[str]
) -> list[int]:
    """NVML indices of the GPUs that the engine's ``devices`` name, in order, without repeats.

    ``cuda:N`` is the N-th GPU visible to CUDA (``cuda`` alone is ``cuda:0``); other
    devices (``cpu``, ``mps``, ``meta``) are not GPUs and are skipped.
    ``CUDA_VISIBLE_DEVICES`` in ``environ`` lists NVML indices or GPU UUIDs (a unique
    prefix is enough, with or without ``GPU-``). As in CUDA, the list ends at the
    first entry that names no GPU (``0,2,-1,1`` shows 0 and 2) and an empty value
    hides every GPU; unset, every GPU is visible in NVML order. ``uuids`` are the
    UUIDs of all GPUs by NVML index ("" for one that could not be read).

    Indices in ``CUDA_VISIBLE_DEVICES`` and ordinals in ``cuda:N`` are taken to be
    in NVML's (PCI bus) order: true with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or when
    all GPUs are the same model.

    Raises :class:`EnergyError` for ``cuda:N`` beyond the visible GPUs and for MIG
    instances (NVML's energy figures are per physical GPU).
    """
    visible = _visible_gpus(environ, uuids)
    indices: list[int] = []
    for device in devices:
        ordinal = _cuda_ordinal(device)
        if ordinal is None:
            continue
        if ordinal >= len(visible):
            raise EnergyError(
                f"device {device!r} asks for visible GPU {ordinal}, but this process sees "
                f"{len(visible)} (CUDA_VISIBLE_DEVICES={environ.get('CUDA_VISIBLE_DEVICES')!r})",
                hint="check the engine's device setting against CUDA_VISIBLE_DEVICES",
            )
        if visible[ordinal] not in indices:
            indices.append(visible[ordinal])
    return indices


@dataclass
class _Gpu:
    """One GPU in scope, and what the current window has read from it."""

    index: int
    handle: Any
    uuid: str
    name: str
    cuda_device: str
    counter_start_mj: int | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)  # (clock s, W)
    first_poll_ok: bool = False
    last_poll_ok: bool = False
    errors: list[str] = field(default_factory=list)  # the first few, for the details
    n_errors: int = 0

    def note_error(self, error: str) -> None:
        self.n_errors += 1
        if len(self.errors) < _KEPT_ERRORS:
            self.errors.append(error)

    @property
    def domain(self) -> str:
        return f"gpu:{self.index}"

    @property
    def label(self) -> str:
        return f"{self.domain} ({self.uuid})"


@dataclass
class _Window:
    nvml: Any
    gpus: list[_Gpu]
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

    def probe(self) -> Availability:
        """Available when NVML initialises and at least one GPU is in scope; else the reason."""
        try:
            nvml = _load_nvml(self._nvml)
        except EnergyError as err:
            return Availability(False, err.message)
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as err:
            return Availability(False, f"NVML could not initialise: {err}")
        try:
            gpus, _ = _open_scope(nvml, self.devices, self._env())
            counters = {gpu.domain: _has_counter(nvml, gpu.handle) for gpu in gpus}
            driver = _driver_version(nvml)
        except nvml.NVMLError as err:
            return Availability(False, f"NVML error: {err}")
        except EnergyError as err:
            return Availability(False, err.message)
        finally:
            _shutdown(nvml)
        with_counter = [d for d, has in counters.items() if has]
        without = [d for d, has in counters.items() if not has]
        parts = []
        if with_counter:
            parts.append(f"total-energy counter on {', '.join(with_counter)}")
        if without:
            parts.append(f"integrated power on {', '.join(without)} (no energy counter)")
        return Availability(True, "NVML: " + "; ".join(parts), version=driver)

    def begin(self) -> None:
        """Initialise NVML, read each GPU's counter, take a power sample, start the poller."""
        if self._window is not None:
            raise EnergyError("nvml sampler: begin() called twice without end()")
        nvml = _load_nvml(self._nvml)
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as err:
            raise EnergyError(
                f"NVML could not initialise: {err}",
                hint="check the NVIDIA driver with `nvidia-smi`",
            ) from err
        environ = self._env()
        try:
            gpus, all_names = _open_scope(nvml, self.devices, environ)
            for gpu in gpus:
                gpu.counter_start_mj = _read_counter_mj(nvml, gpu.handle)
            driver = _driver_version(nvml)
        except nvml.NVMLError as err:
            _shutdown(nvml)
            raise EnergyError(f"NVML failed at the window's start: {err}") from err
        except EnergyError:
            _shutdown(nvml)
            raise
        window = _Window(
            nvml=nvml,
            gpus=gpus,
            begin_s=self._clock(),
            driver_version=driver,
            cuda_visible_devices=environ.get("CUDA_VISIBLE_DEVICES"),
            order_warning=_order_warning(environ, all_names),
        )
        self._poll(window, initial=True)
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
        warnings: list[str] = []
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
            end_s = self._poll(window, final=True)
            counter_end_mj = {
                gpu.index: self._counter_at_end(window.nvml, gpu) for gpu in window.gpus
            }
        finally:
            _shutdown(window.nvml)

        duration_s = end_s - window.begin_s
        domains: list[DomainEnergy] = []
        devices: dict[str, dict[str, Any]] = {}
        for gpu in window.gpus:
            domain, detail, warning = _domain_result(
                gpu, counter_end_mj[gpu.index], duration_s, self.name
            )
            domains.append(domain)
            devices[gpu.domain] = detail
            if warning is not None:
                warnings.append(warning)
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
            confidence=_confidence(domains, partial),
            details={
                "devices": devices,
                "poll_interval_s": self.poll_interval_s,
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
        nvml = window.nvml
        now_s = self._clock()
        readings: list[tuple[_Gpu, float | None, str | None]] = []
        for gpu in window.gpus:
            try:
                readings.append((gpu, int(nvml.nvmlDeviceGetPowerUsage(gpu.handle)) / 1000, None))
            except nvml.NVMLError as err:
                readings.append((gpu, None, f"power read at {now_s - window.begin_s:.2f} s: {err}"))
        with window.lock:
            if window.closed and not final:
                return now_s
            window.n_polls += 1
            for gpu, power_w, error in readings:
                if power_w is not None:
                    gpu.samples.append((now_s, power_w))
                elif error is not None:
                    gpu.note_error(error)
                gpu.last_poll_ok = power_w is not None
                if initial:
                    gpu.first_poll_ok = power_w is not None
        return now_s

    def _counter_at_end(self, nvml: Any, gpu: _Gpu) -> int | None:
        if gpu.counter_start_mj is None:
            return None
        try:
            return int(nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
        except nvml.NVMLError as err:
            gpu.note_error(f"energy counter read at the window's end: {err}")
            return None


class NvmlTelemetry:
    """The ``nvml`` telemetry source: one :class:`DeviceSample` per GPU in scope per read.

    Scope, ``nvml`` and ``environ`` work as for :class:`NvmlSampler`. Building it
    initialises NVML (``EnergyError`` if that fails); :meth:`close` shuts it down.
    A reading NVML refuses (unsupported, or a GPU that failed) is None in that
    sample; :meth:`read` never raises for NVML errors.
    """

    name = "nvml"

    def __init__(
        self,
        devices: Sequence[str] = ("cuda:0",),
        *,
        nvml: ModuleType | object | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        module = _load_nvml(nvml)
        try:
            module.nvmlInit()
        except module.NVMLError as err:
            raise EnergyError(f"NVML could not initialise: {err}") from err
        try:
            self._gpus, _ = _open_scope(
                module, devices, environ if environ is not None else os.environ
            )
        except module.NVMLError as err:
            _shutdown(module)
            raise EnergyError(f"NVML could not list the GPUs: {err}") from err
        except EnergyError:
            _shutdown(module)
            raise
        self._nvml: Any = module
        self._open = True
        self._no_counter: set[int] = set()

    def devices(self) -> list[str]:
        """``gpu:N`` per GPU in scope, N being the NVML index."""
        return [gpu.domain for gpu in self._gpus]

    def read(self) -> list[DeviceSample]:
        """Power, energy counter, temperature, SM clock, utilisation, memory, throttle bits."""
        nvml = self._nvml
        samples = []
        for gpu in self._gpus:
            handle = gpu.handle
            power_mw = self._try(nvml.nvmlDeviceGetPowerUsage, handle)
            energy_mj = None
            if gpu.index not in self._no_counter:
                try:
                    energy_mj = int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
                except nvml.NVMLError_NotSupported:
                    self._no_counter.add(gpu.index)
                except nvml.NVMLError:
                    pass
            temperature = self._try(
                nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU
            )
            sm_clock = self._try(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)
            utilisation = self._try(nvml.nvmlDeviceGetUtilizationRates, handle)
            memory = self._try(nvml.nvmlDeviceGetMemoryInfo, handle)
            samples.append(
                DeviceSample(
                    device=gpu.domain,
                    power_w=None if power_mw is None else int(power_mw) / 1000,
                    energy_j=None if energy_mj is None else energy_mj / 1000,
                    temperature_c=None if temperature is None else float(temperature),
                    sm_clock_mhz=None if sm_clock is None else float(sm_clock),
                    utilisation_pct=None if utilisation is None else float(utilisation.gpu),
                    memory_used_mib=None if memory is None else int(memory.used) / _MIB,
                    throttle_reasons=self._throttle_reasons(handle),
                )
            )
        return samples

    def close(self) -> None:
        """Shut NVML down (once)."""
        if self._open:
            self._open = False
            _shutdown(self._nvml)

    def _try(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except self._nvml.NVMLError:
            return None

    def _throttle_reasons(self, handle: Any) -> int | None:
        # "clocks event reasons" is the newer name of "clocks throttle reasons"; the
        # old entry point remains for older pynvml and drivers.
        for name in (
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
        ):
            call = getattr(self._nvml, name, None)
            if call is None:
                continue
            reasons = self._try(call, handle)
            if reasons is not None:
                return int(reasons)
        return None


def _load_nvml(nvml: ModuleType | object | None) -> Any:
    if nvml is not None:
        return nvml
    try:
        return importlib.import_module("pynvml")
    except ImportError as err:
        raise EnergyError(PYNVML_MISSING, hint="pip install nvidia-ml-py") from err


def _shutdown(nvml: Any) -> None:
    # nothing to do about a failed shutdown: the reading is already taken
    with contextlib.suppress(nvml.NVMLError):
        nvml.nvmlShutdown()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _open_scope(
    nvml: Any, devices: Sequence[str], environ: Mapping[str, str]
) -> tuple[list[_Gpu], list[str | None]]:
    """The GPUs in scope (NVML initialised) and the names of all GPUs (None: unreadable)."""
    count = int(nvml.nvmlDeviceGetCount())
    if count == 0:
        raise EnergyError("no NVIDIA GPU: NVML reports 0 devices")
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    # A GPU out of scope that cannot answer must not stop us measuring the others.
    uuids = [_try_text(nvml, nvml.nvmlDeviceGetUUID, h) for h in handles]
    names = [_try_text(nvml, nvml.nvmlDeviceGetName, h) for h in handles]
    uuid_strings = [u or "" for u in uuids]
    indices = gpu_indices_in_scope(devices, environ, uuid_strings)
    if not indices:
        raise EnergyError(
            f"no NVIDIA GPU in scope: devices {list(devices)} with CUDA_VISIBLE_DEVICES="
            f"{environ.get('CUDA_VISIBLE_DEVICES')!r}"
        )
    visible = _visible_gpus(environ, uuid_strings)
    gpus = [
        _Gpu(
            index=i,
            handle=handles[i],
            uuid=uuids[i] or _text(nvml.nvmlDeviceGetUUID(handles[i])),
            name=names[i] or _text(nvml.nvmlDeviceGetName(handles[i])),
            cuda_device=f"cuda:{visible.index(i)}",
        )
        for i in indices
    ]
    return gpus, names


def _try_text(nvml: Any, call: Callable[[Any], object], handle: Any) -> str | None:
    try:
        return _text(call(handle))
    except nvml.NVMLError:
        return None


def _driver_version(nvml: Any) -> str | None:
    try:
        return _text(nvml.nvmlSystemGetDriverVersion())
    except nvml.NVMLError:
        return None


def _read_counter_mj(nvml: Any, handle: Any) -> int | None:
    """The total-energy counter in mJ, or None where the GPU has none (pre-Volta)."""
    try:
        return int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    except nvml.NVMLError_NotSupported:
        return None


def _has_counter(nvml: Any, handle: Any) -> bool:
    return _read_counter_mj(nvml, handle) is not None


def _visible_gpus(environ: Mapping[str, str], uuids: Sequence[str]) -> list[int]:
    """NVML indices of the GPUs CUDA makes visible, in CUDA's order."""
    raw = environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return list(range(len(uuids)))
    visible: list[int] = []
    for entry in raw.split(","):
        index = _visible_entry(entry.strip(), uuids)
        if index is None or index in visible:
            break  # CUDA ignores everything from the first invalid entry on
        visible.append(index)
    return visible


def _visible_entry(entry: str, uuids: Sequence[str]) -> int | None:
    if not entry:
        return None
    if re.fullmatch(r"[+-]?\d+", entry):
        index = int(entry)
        return index if 0 <= index < len(uuids) else None
    if entry.upper().startswith("MIG-"):
        raise EnergyError(
            f"CUDA_VISIBLE_DEVICES names a MIG instance ({entry}); NVML reads energy per "
            "physical GPU, so a MIG instance's energy cannot be measured",
            hint="measure on a whole GPU, or use energy_sampler: estimate",
        )
    prefix = entry.lower() if entry.lower().startswith("gpu-") else f"gpu-{entry.lower()}"
    matches = [i for i, uuid in enumerate(uuids) if uuid and uuid.lower().startswith(prefix)]
    return matches[0] if len(matches) == 1 else None


def _cuda_ordinal(device: str) -> int | None:
    text = device.strip().lower()
    if text == "cuda":
        return 0
    match = re.fullmatch(r"cuda:(\d+)", text)
    return int(match.group(1)) if match else None


def _order_warning(environ: Mapping[str, str], names: Sequence[str | None]) -> str | None:
    """A warning when CUDA's GPU numbering may differ from NVML's.

    CUDA numbers GPUs fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; NVML
    numbers them by PCI bus. The two agree when all GPUs are one model, and a
    ``CUDA_VISIBLE_DEVICES`` of UUIDs pins the mapping whatever the order.
    """
    if len({n for n in names if n is not None}) < 2:
        return None
    if environ.get("CUDA_DEVICE_ORDER", "").strip().upper() == "PCI_BUS_ID":
        return None
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible and all(
        not re.fullmatch(r"[+-]?\d+", e.strip()) for e in visible.split(",") if e.strip()
    ):
        return None
    return (
        "this host has GPUs of different models and CUDA_DEVICE_ORDER is not PCI_BUS_ID: "
        "CUDA may number the GPUs differently from NVML, so the GPUs measured may not be "
        "the ones the engine used; set CUDA_DEVICE_ORDER=PCI_BUS_ID"
    )


def _trapezoid_j(samples: Sequence[tuple[float, float]]) -> float | None:
    if len(samples) < 2:
        return None
    ordered = sorted(samples)
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(ordered))


def _domain_result(
    gpu: _Gpu, counter_end_mj: int | None, duration_s: float, source: str
) -> tuple[DomainEnergy, dict[str, Any], str | None]:
    """The domain's figure, its details, and a warning when the figure is not the full window."""
    counter_j = None
    if gpu.counter_start_mj is not None and counter_end_mj is not None:
        counter_j = (counter_end_mj - gpu.counter_start_mj) / 1000
    integrated_j = _trapezoid_j(gpu.samples)
    partial = counter_j is None and not (gpu.first_poll_ok and gpu.last_poll_ok)

    energy_j: float | None
    method: Literal["counter", "integrated"]
    warning = None
    if counter_j is not None:
        energy_j, method = counter_j, "counter"
    else:
        energy_j, method = integrated_j, "integrated"
        first_error = gpu.errors[0] if gpu.errors else "no error reported"
        if not gpu.samples and gpu.counter_start_mj is None:
            warning = (
                f"{gpu.label}: NVML gave neither an energy counter nor power readings "
                f"({first_error}); no energy figure"
            )
        elif partial:
            covered_s = gpu.samples[-1][0] - gpu.samples[0][0] if gpu.samples else 0.0
            what = (
                f"power integrated over the {covered_s:.1f} s it answered"
                if energy_j is not None
                else "no figure"
            )
            warning = (
                f"{gpu.label}: NVML error mid-window ({first_error}); its energy is partial "
                f"({what} of the {duration_s:.1f} s window)"
            )
        elif gpu.counter_start_mj is not None:
            warning = (
                f"{gpu.label}: the energy counter could not be read ({first_error}); "
                "using integrated power instead"
            )
    gap_pct = None
    if counter_j is not None and integrated_j is not None and counter_j > 0:
        gap_pct = 100 * (integrated_j - counter_j) / counter_j
    details: dict[str, Any] = {
        "uuid": gpu.uuid,
        "name": gpu.name,
        "cuda_device": gpu.cuda_device,
        "method": method,
        "counter_j": counter_j,
        "integrated_j": integrated_j,
        "gap_pct": gap_pct,
        "n_power_samples": len(gpu.samples),
        "partial": partial,
        "errors": list(gpu.errors),
        "n_errors": gpu.n_errors,
    }
    return (
        DomainEnergy(domain=gpu.domain, energy_j=energy_j, method=method, source=source),
        details,
        warning,
    )


def _confidence(domains: Sequence[DomainEnergy], partial: bool) -> Literal["high", "medium", "low"]:
    if partial or any(d.energy_j is None for d in domains):
        return "low"
    if any(d.method == "integrated" for d in domains):
        return "medium"
    return "high"
