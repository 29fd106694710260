"""Choosing an energy sampler by name, and what `auto` picks."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llenergymeasure.energy.composite import CompositeSampler
from llenergymeasure.energy.estimate import EstimateSampler, NoEnergySampler
from llenergymeasure.energy.registry import sampler_class, sampler_names, select_sampler
from llenergymeasure.errors import EnergyError
from llenergymeasure.testing.fake_powercap import make_tree
from llenergymeasure.testing.h200 import h200_nvml
from llenergymeasure.testing.simulated_nvml import (
    NVMLError_DriverNotLoaded,
    SimulatedGpu,
    SimulatedNvml,
)


def test_table_loads_the_classes() -> None:
    assert set(sampler_names()) >= {"estimate", "none"}
    assert sampler_class("estimate") is EstimateSampler
    assert sampler_class("none") is NoEnergySampler


def test_the_fake_sampler_is_not_in_the_table() -> None:
    """A test double is passed as an object, never chosen by name in a measurement."""
    assert "fake" not in sampler_names()
    with pytest.raises(EnergyError, match="unknown energy sampler 'fake'"):
        sampler_class("fake")


def test_auto_falls_back_to_the_labelled_estimate(tmp_path: Path) -> None:
    chosen = select_sampler(
        "auto", watts_per_thread=4.5, tdp_source="user config", powercap_root=tmp_path
    )
    sampler = chosen.sampler
    assert isinstance(sampler, EstimateSampler)
    assert sampler.watts_per_thread == 4.5
    assert sampler.tdp_source == "user config"
    assert chosen.reason.startswith(
        "estimate: no hardware energy counter readable on this host — using the labelled CPU "
        "estimate"
    )
    assert "passed over: rapl:" in chosen.reason
    assert [s.name for s in chosen.sources] == ["process"]


def test_auto_on_a_gpu_host_measures_gpus_by_nvml_and_the_cpu_by_rapl(tmp_path: Path) -> None:
    make_tree(tmp_path, n_packages=1)
    nvml = SimulatedNvml([SimulatedGpu("H200", "GPU-aaa", power_w=150.0)])
    chosen = select_sampler(
        "auto",
        watts_per_thread=10.0,
        tdp_source="x",
        devices=["cuda:0"],
        powercap_root=tmp_path,
        nvml=nvml,
    )
    assert isinstance(chosen.sampler, CompositeSampler)
    assert chosen.sampler.name == "nvml+rapl"
    assert chosen.sampler.needs_baseline
    assert chosen.reason.startswith("nvml: ")
    assert [s.name for s in chosen.sources] == ["rapl", "nvml", "process"]


def test_auto_on_a_gpu_host_without_rapl_estimates_the_cpu(tmp_path: Path) -> None:
    nvml = SimulatedNvml([SimulatedGpu("H200", "GPU-aaa", power_w=150.0)])
    chosen = select_sampler(
        "auto",
        watts_per_thread=10.0,
        tdp_source="x",
        devices=["cuda:0"],
        powercap_root=tmp_path,
        nvml=nvml,
    )
    assert chosen.sampler.name == "nvml+estimate"
    assert [s.name for s in chosen.sources] == ["nvml", "process"]


def test_auto_on_cuda_without_a_readable_nvml_fails_instead_of_measuring_the_cpu(
    tmp_path: Path,
) -> None:
    # this host has nvidia-ml-py but no NVIDIA driver: a CUDA run here must not silently
    # become a CPU-only measurement
    error = _auto_on_cuda_fails(tmp_path)
    assert error.message.startswith("this run uses cuda:0 but NVML cannot measure it: ")
    # pynvml imported (it is a dependency) and failed at the driver, not at the import
    assert "NVML could not initialise: " in error.message
    assert "not installed" not in error.message
    assert error.hint is not None and "energy_sampler" in error.hint


def _auto_on_cuda_fails(tmp_path: Path, nvml: object = None) -> EnergyError:
    """The error of ``auto`` on cuda:0 with ``nvml`` (None: this host's pynvml)."""
    with pytest.raises(EnergyError) as caught:
        select_sampler(
            "auto",
            watts_per_thread=10.0,
            tdp_source="x",
            devices=["cuda:0"],
            powercap_root=tmp_path,
            nvml=nvml,
        )
    return caught.value


@pytest.mark.parametrize(
    ("pynvml", "nvml", "reason"),
    [
        (None, None, "pynvml not installed: pip install nvidia-ml-py"),
        ("kept", h200_nvml(init_error=NVMLError_DriverNotLoaded), "could not initialise: Driver"),
    ],
    ids=["no-pynvml", "no-driver"],
)
def test_the_cuda_pre_flight_failure_says_whether_pynvml_or_the_driver_is_missing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pynvml: str | None,
    nvml: object,
    reason: str,
) -> None:
    if pynvml is None:
        monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` fails
    message = _auto_on_cuda_fails(tmp_path, nvml).message
    assert message.startswith("this run uses cuda:0 but NVML cannot measure it: ")
    assert message.endswith(reason) if pynvml is None else reason in message
    assert ("not installed" in message) is (pynvml is None)


def test_nvidia_ml_py_is_a_dependency_and_pynvml_imports() -> None:
    requires = importlib.metadata.requires("llenergymeasure") or []
    names = {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requires}
    assert "nvidia-ml-py" in names
    assert not any(r.lower().startswith("nvidia-ml-py") and "extra ==" in r for r in requires)
    module = importlib.import_module("pynvml")
    assert callable(module.nvmlInit)


def test_auto_on_cuda_with_nvml_measures_the_gpu_and_the_cpu_apart(tmp_path: Path) -> None:
    nvml = h200_nvml()
    chosen = select_sampler(
        "auto",
        watts_per_thread=10.0,
        tdp_source="x",
        devices=["cuda:0"],
        powercap_root=tmp_path,
        nvml=nvml,
    )
    assert chosen.sampler.name == "nvml+estimate"
    assert chosen.reason.startswith("nvml: NVML: total-energy counter on gpu:0")


def test_naming_another_sampler_runs_a_cuda_config_without_nvml() -> None:
    chosen = select_sampler("estimate", watts_per_thread=10.0, tdp_source="x", devices=["cuda:0"])
    assert isinstance(chosen.sampler, EstimateSampler)


def test_estimate_by_name() -> None:
    chosen = select_sampler("estimate", watts_per_thread=10.0, tdp_source="default per-thread")
    assert isinstance(chosen.sampler, EstimateSampler)
    assert chosen.reason.startswith("requested")


def test_none_by_name() -> None:
    chosen = select_sampler("none", watts_per_thread=10.0, tdp_source="x")
    assert isinstance(chosen.sampler, NoEnergySampler)
    assert chosen.reason == "energy measurement disabled (measurement.energy_sampler: none)"


@pytest.mark.parametrize("name", ["zeus", "rapl", "codecarbon"])
def test_an_unavailable_named_sampler_says_why_and_suggests_auto(name: str, tmp_path: Path) -> None:
    with pytest.raises(EnergyError, match="cannot read energy on this host") as info:
        select_sampler(name, watts_per_thread=10.0, tdp_source="x", powercap_root=tmp_path)
    assert info.value.hint is not None
    assert "auto" in info.value.hint


def test_named_nvml_on_the_simulated_device() -> None:
    nvml = SimulatedNvml([SimulatedGpu("H200", "GPU-aaa", power_w=150.0)])
    chosen = select_sampler(
        "nvml", watts_per_thread=10.0, tdp_source="x", devices=["cuda:0"], nvml=nvml
    )
    assert chosen.sampler.name == "nvml"
    assert [s.name for s in chosen.sources] == ["nvml", "process"]


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(EnergyError, match="did you mean 'estimate'") as info:
        select_sampler("estimat", watts_per_thread=10.0, tdp_source="x")
    assert "unknown energy sampler 'estimat'" in info.value.message


def test_unknown_name_with_nothing_close() -> None:
    with pytest.raises(EnergyError, match="unknown energy sampler") as info:
        select_sampler("qqqqqq", watts_per_thread=10.0, tdp_source="x")
    assert "did you mean" not in info.value.message


def test_unknown_class_lookup_raises() -> None:
    with pytest.raises(EnergyError, match="did you mean 'nvml'"):
        sampler_class("nvlm")


def test_fake_is_passed_as_an_object_not_chosen_by_name() -> None:
    with pytest.raises(EnergyError, match="fake"):
        select_sampler("fake", watts_per_thread=10.0, tdp_source="x")


def test_importing_energy_and_system_loads_no_vendor_library() -> None:
    code = (
        "import sys\n"
        "import llenergymeasure.energy.registry, llenergymeasure.system.environment\n"
        "from llenergymeasure.energy.registry import select_sampler\n"
        "from llenergymeasure.system.environment import capture_environment\n"
        "heavy = ('torch', 'transformers', 'pynvml', 'vllm', 'zeus', 'codecarbon')\n"
        "select_sampler('auto', watts_per_thread=10.0, tdp_source='x')\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "capture_environment()\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    after_auto, after_snapshot = done.stdout.strip().splitlines()
    assert after_auto == "[]"
    # the snapshot asks NVML for the GPUs (pure Python, no CUDA context); nothing else
    assert after_snapshot == "['pynvml']"
