"""The Zeus adapter, on a fake ``zeus.monitor`` that implements only the API the adapter uses."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest

from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.zeus import ZeusSampler
from llenergymeasure.errors import EnergyError


@dataclass
class FakeMeasurement:
    time: float
    gpu_energy: dict[int, float]
    cpu_energy: dict[int, float] | None = None
    dram_energy: dict[int, float] | None = None


@dataclass
class FakeGpus:
    without_counter: set[int] = field(default_factory=set)

    def supportsGetTotalEnergyConsumption(self, index: int) -> bool:  # noqa: N802 (Zeus's name)
        return index not in self.without_counter


def fake_zeus(
    measurement: FakeMeasurement,
    *,
    without_counter: set[int] | None = None,
    fail_with: Exception | None = None,
) -> tuple[ModuleType, list[tuple[Any, ...]]]:
    """A ``zeus.monitor`` module whose monitor returns ``measurement``; and its call log."""
    calls: list[tuple[Any, ...]] = []

    class ZeusMonitor:
        def __init__(
            self, gpu_indices: list[int] | None = None, cpu_indices: list[int] | None = None
        ) -> None:
            if fail_with is not None:
                raise fail_with
            calls.append(("init", gpu_indices, cpu_indices))
            self.gpus = FakeGpus(without_counter or set())
            self.cpu_indices = [0] if cpu_indices is None else cpu_indices

        def begin_window(self, key: str, sync_execution: bool = True) -> None:
            calls.append(("begin_window", key, sync_execution))

        def end_window(
            self, key: str, sync_execution: bool = True, cancel: bool = False
        ) -> FakeMeasurement:
            calls.append(("end_window", key, sync_execution))
            return measurement

    module = ModuleType("zeus.monitor")
    module.ZeusMonitor = ZeusMonitor  # type: ignore[attr-defined]
    return module, calls


def install(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> None:
    monkeypatch.setitem(sys.modules, "zeus", ModuleType("zeus"))
    monkeypatch.setitem(sys.modules, "zeus.monitor", module)


def test_absent_zeus_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zeus", None)
    monkeypatch.setitem(sys.modules, "zeus.monitor", None)
    sampler = ZeusSampler()

    availability = sampler.probe()

    assert not availability.available
    assert "pip install 'llenergymeasure[zeus]'" in availability.reason
    with pytest.raises(EnergyError) as raised:
        sampler.begin()
    assert raised.value.hint == "pip install 'llenergymeasure[zeus]'"


def test_measurement_maps_to_gpu_cpu_and_dram_domains(monkeypatch: pytest.MonkeyPatch) -> None:
    measurement = FakeMeasurement(
        time=4.0,
        gpu_energy={0: 120.5, 1: 80.0},
        cpu_energy={0: 30.0, 1: 28.0},
        dram_energy={0: 5.0},
    )
    module, calls = fake_zeus(measurement)
    install(monkeypatch, module)
    sampler = ZeusSampler(gpu_indices=[0, 1])
    assert isinstance(sampler, EnergySampler)

    assert sampler.probe().available
    sampler.begin()
    reading = sampler.end()

    assert calls == [
        ("init", [0, 1], None),
        ("begin_window", "llenergymeasure", False),
        ("end_window", "llenergymeasure", False),
    ]
    assert reading.sampler == "zeus"
    assert [(d.domain, d.energy_j) for d in reading.domains] == [
        ("gpu:0", 120.5),
        ("gpu:1", 80.0),
        ("cpu:0", 30.0),
        ("cpu:1", 28.0),
        ("dram:0", 5.0),
    ]
    assert {d.method for d in reading.domains} == {"counter"}
    assert {d.source for d in reading.domains} == {"zeus"}
    assert reading.measured_j == pytest.approx(263.5)
    assert reading.duration_s == 4.0
    assert reading.confidence == "high"
    assert reading.warnings == ()
    assert reading.details["gpu_indices"] == [0, 1]
    assert reading.details["integrated_gpus"] == []


def test_injected_module_and_gpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zeus", None)  # the injected module is used, not an import
    module, calls = fake_zeus(FakeMeasurement(time=1.5, gpu_energy={2: 9.0}))
    sampler = ZeusSampler(gpu_indices=(2,), cpu_indices=(), zeus_module=module)

    sampler.begin()
    reading = sampler.end()

    assert calls[0] == ("init", [2], [])
    assert [(d.domain, d.energy_j) for d in reading.domains] == [("gpu:2", 9.0)]


def test_gpu_without_counter_is_integrated(monkeypatch: pytest.MonkeyPatch) -> None:
    module, _ = fake_zeus(
        FakeMeasurement(time=2.0, gpu_energy={0: 10.0, 1: 11.0}), without_counter={1}
    )
    sampler = ZeusSampler(gpu_indices=(0, 1), zeus_module=module)

    sampler.begin()
    reading = sampler.end()

    assert [(d.domain, d.method) for d in reading.domains] == [
        ("gpu:0", "counter"),
        ("gpu:1", "integrated"),
    ]
    assert reading.method == "integrated"
    assert reading.confidence == "medium"
    assert reading.details["integrated_gpus"] == [1]


def test_missing_or_unchanged_gpu_energy_is_null_with_warnings() -> None:
    module, _ = fake_zeus(FakeMeasurement(time=0.01, gpu_energy={0: 0.0}))
    sampler = ZeusSampler(gpu_indices=(0, 1), zeus_module=module)

    sampler.begin()
    reading = sampler.end()

    assert [(d.domain, d.energy_j) for d in reading.domains] == [("gpu:0", None), ("gpu:1", None)]
    assert reading.measured_j is None
    assert len(reading.warnings) == 2
    assert "did not advance" in reading.warnings[0]
    assert "gpu:1" in reading.warnings[1]


def test_monitor_failure_is_translated() -> None:
    module, _ = fake_zeus(
        FakeMeasurement(time=0.0, gpu_energy={}), fail_with=RuntimeError("no NVML")
    )
    sampler = ZeusSampler(zeus_module=module)

    availability = sampler.probe()
    assert not availability.available
    assert "no NVML" in availability.reason
    with pytest.raises(EnergyError, match="no NVML") as raised:
        sampler.begin()
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_end_without_begin_raises() -> None:
    module, _ = fake_zeus(FakeMeasurement(time=0.0, gpu_energy={}))
    with pytest.raises(EnergyError, match="without begin"):
        ZeusSampler(zeus_module=module).end()
