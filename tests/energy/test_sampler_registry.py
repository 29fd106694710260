"""Choosing an energy sampler by name, and what `auto` picks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llenergymeasure.energy.estimate import EstimateSampler, NoEnergySampler
from llenergymeasure.energy.fake import FakeEnergySampler
from llenergymeasure.energy.registry import sampler_class, sampler_names, select_sampler
from llenergymeasure.errors import EnergyError


def test_table_loads_the_classes() -> None:
    assert set(sampler_names()) >= {"estimate", "none", "fake"}
    assert sampler_class("estimate") is EstimateSampler
    assert sampler_class("none") is NoEnergySampler
    assert sampler_class("fake") is FakeEnergySampler


def test_auto_falls_back_to_the_labelled_estimate() -> None:
    sampler, reason = select_sampler("auto", watts_per_thread=4.5, tdp_source="user config")
    assert isinstance(sampler, EstimateSampler)
    assert sampler.watts_per_thread == 4.5
    assert sampler.tdp_source == "user config"
    assert reason.startswith(
        "no hardware energy counter readable on this host (no NVML GPU, no RAPL powercap) "
        "— using the labelled CPU estimate"
    )


def test_estimate_by_name() -> None:
    sampler, reason = select_sampler(
        "estimate", watts_per_thread=10.0, tdp_source="default per-thread"
    )
    assert isinstance(sampler, EstimateSampler)
    assert "estimate" in reason


def test_none_by_name() -> None:
    sampler, reason = select_sampler("none", watts_per_thread=10.0, tdp_source="x")
    assert isinstance(sampler, NoEnergySampler)
    assert reason == "energy measurement disabled (measurement.energy_sampler: none)"


@pytest.mark.parametrize("name", ["nvml", "zeus", "rapl", "codecarbon"])
def test_unimplemented_sampler_says_so(name: str) -> None:
    with pytest.raises(EnergyError, match="not available in this installation") as info:
        select_sampler(name, watts_per_thread=10.0, tdp_source="x")
    assert info.value.hint is not None
    assert "energy_sampler: estimate" in info.value.hint
    assert "auto" in info.value.hint


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
        "select_sampler('auto', watts_per_thread=10.0, tdp_source='x')\n"
        "capture_environment()\n"
        "heavy = [m for m in ('torch', 'transformers', 'pynvml', 'vllm', 'zeus', 'codecarbon')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
