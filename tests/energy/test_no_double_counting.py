"""No device is counted twice (item 8): a composite refuses a domain two parts report,
``auto`` never runs CodeCarbon's GPU figure next to NVML, and Zeus's GPUs are named by UUID
as NVML names them, whatever CUDA_VISIBLE_DEVICES does to the numbering."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_codecarbon_sampler import FakeEmissionsData, fake_codecarbon
from test_zeus_sampler import FakeMeasurement, fake_zeus

from llenergymeasure.energy.composite import CompositeSampler
from llenergymeasure.energy.registry import select_sampler
from llenergymeasure.energy.zeus import ZeusSampler
from llenergymeasure.errors import EnergyError
from llenergymeasure.testing.fake_sampler import FakeEnergySampler
from llenergymeasure.testing.h200 import h200_nvml


def test_a_composite_refuses_a_domain_two_parts_report() -> None:
    nvml_like = FakeEnergySampler({"gpu:0": 300.0})
    codecarbon_like = FakeEnergySampler({"gpu:0": 290.0, "cpu:0": 20.0}, method="estimated")
    composite = CompositeSampler([nvml_like, codecarbon_like])
    composite.begin()
    with pytest.raises(EnergyError, match="gpu:0 was measured by both `fake` and `fake`"):
        composite.end()


def test_the_composite_headline_confidence_is_that_of_its_measured_parts() -> None:
    gpu = FakeEnergySampler({"gpu:0": 300.0})
    cpu = FakeEnergySampler({"cpu:0": 20.0}, method="estimated")
    composite = CompositeSampler([gpu, cpu])
    composite.begin()
    reading = composite.end()
    assert reading.confidence == "high"  # the estimate stands apart, it does not lower it
    assert reading.measured_j is not None and reading.estimated_j is not None


def test_auto_runs_codecarbon_beside_nvml_without_its_gpu_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, _ = fake_codecarbon(FakeEmissionsData(0.001, 0.002, 0.0003, gpu_count=1))
    monkeypatch.setitem(sys.modules, "codecarbon", module)
    monkeypatch.chdir(tmp_path)
    chosen = select_sampler(
        "auto",
        watts_per_thread=10.0,
        tdp_source="x",
        devices=["cuda:0"],
        powercap_root=tmp_path,
        nvml=h200_nvml(),
    )
    assert chosen.sampler.name == "nvml+codecarbon"
    chosen.sampler.begin()
    reading = chosen.sampler.end()
    assert [(d.domain, d.source) for d in reading.domains] == [
        ("gpu:0", "nvml"),
        ("cpu:0", "codecarbon"),
    ]
    assert "left out" in reading.details["codecarbon"]["gpu_domain"]


def test_codecarbon_by_name_keeps_its_gpu_figure() -> None:
    module, _ = fake_codecarbon(FakeEmissionsData(0.001, 0.002, 0.0003, gpu_count=1))
    sampler_module = __import__("llenergymeasure.energy.codecarbon", fromlist=["x"])
    sampler = sampler_module.CodeCarbonSampler(codecarbon_module=module)
    sampler.begin()
    assert [d.domain for d in sampler.end().domains] == ["gpu:0", "cpu:0"]


def test_zeus_names_its_gpus_by_nvml_index_under_cuda_visible_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # CUDA sees NVML's GPU 2 as cuda:0; Zeus reports it under its CUDA index 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    nvml = h200_nvml(3)
    module, _ = fake_zeus(FakeMeasurement(time=2.0, gpu_energy={0: 1370.0}))
    monkeypatch.setitem(sys.modules, "zeus", type(sys)("zeus"))
    monkeypatch.setitem(sys.modules, "zeus.monitor", module)
    chosen = select_sampler(
        "zeus", watts_per_thread=10.0, tdp_source="x", devices=["cuda:0"], nvml=nvml
    )
    assert isinstance(chosen.sampler, ZeusSampler)
    chosen.sampler.begin()
    (gpu,) = [d for d in chosen.sampler.end().domains if d.domain.startswith("gpu")]
    assert gpu.domain == "gpu:2"
    assert gpu.device_uuid == nvml.gpus[2].uuid


def test_zeus_without_nvml_to_map_its_gpus_says_so() -> None:
    module, _ = fake_zeus(FakeMeasurement(time=2.0, gpu_energy={0: 100.0}))
    sampler = ZeusSampler((0,), zeus_module=module)
    sampler.begin()
    reading = sampler.end()
    assert reading.domains[0].domain == "gpu:0" and reading.domains[0].device_uuid is None
    assert "CUDA ordinal" in reading.details["gpu_domains"]
