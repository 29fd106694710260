"""The CodeCarbon adapter, on a fake ``codecarbon`` that implements only the API it uses."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.codecarbon import CodeCarbonSampler
from llenergymeasure.errors import EnergyError


class Script:
    """Returns the scripted values in order, one per call."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def __call__(self) -> float:
        return self.values.pop(0)


@dataclass
class FakeEmissionsData:
    cpu_energy: float  # kWh, as codecarbon reports
    gpu_energy: float
    ram_energy: float
    gpu_count: int | None
    tracking_mode: str = "machine"
    cpu_model: str = "Fake CPU"
    gpu_model: str | None = None
    codecarbon_version: str = "9.9.9"


def fake_codecarbon(
    data: FakeEmissionsData | None, *, new_keywords: bool = True
) -> tuple[ModuleType, list[dict[str, Any]]]:
    """A ``codecarbon`` module with an offline tracker; and the keywords it was built with.

    Like the real one, it writes ``emissions.csv`` into the working folder unless
    told ``save_to_file=False``, and a lock file unless ``allow_multiple_runs``.
    ``new_keywords=False`` mimics a 2.3 release, which knows neither keyword.
    """
    built: list[dict[str, Any]] = []

    class BaseEmissionsTracker:
        def __init__(
            self,
            measure_power_secs: float = 15,
            save_to_file: bool = True,
            save_to_api: bool = False,
            save_to_logger: bool = False,
            save_to_prometheus: bool = False,
            log_level: str = "info",
        ) -> None:
            self.save_to_file = save_to_file

        def start(self) -> None:
            if not built[-1].get("allow_multiple_runs", False):
                Path(".codecarbon.lock").write_text("locked")

        def stop(self) -> float | None:
            if self.save_to_file:
                Path("emissions.csv").write_text("timestamp,emissions\n")
            if data is None:
                return None  # the real stop() swallows its errors and returns None
            self.final_emissions_data = data
            return 0.001

    class NewBaseEmissionsTracker(BaseEmissionsTracker):
        def __init__(
            self,
            save_to_logfire: bool = False,
            allow_multiple_runs: bool = False,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)

    base = NewBaseEmissionsTracker if new_keywords else BaseEmissionsTracker

    class OfflineEmissionsTracker(base):  # type: ignore[valid-type,misc]
        def __init__(self, country_iso_code: str | None = None, *args: Any, **kwargs: Any):
            built.append({"country_iso_code": country_iso_code, **kwargs})
            super().__init__(*args, **kwargs)

    module = ModuleType("codecarbon")
    module.OfflineEmissionsTracker = OfflineEmissionsTracker  # type: ignore[attr-defined]
    module.__version__ = "9.9.9"  # type: ignore[attr-defined]
    return module, built


def test_absent_codecarbon_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    sampler = CodeCarbonSampler()

    availability = sampler.probe()

    assert not availability.available
    assert "pip install 'llenergymeasure[codecarbon]'" in availability.reason
    with pytest.raises(EnergyError) as raised:
        sampler.begin()
    assert raised.value.hint == "pip install 'llenergymeasure[codecarbon]'"


def test_kwh_figures_map_to_estimated_domains_in_joules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = FakeEmissionsData(cpu_energy=0.001, gpu_energy=0.0025, ram_energy=0.0002, gpu_count=2)
    module, built = fake_codecarbon(data)
    monkeypatch.setitem(sys.modules, "codecarbon", module)
    sampler = CodeCarbonSampler(country_iso_code="FRA", clock=Script(3.0, 8.0))
    assert isinstance(sampler, EnergySampler)

    availability = sampler.probe()
    assert availability.available
    assert availability.version == "9.9.9"
    sampler.begin()
    reading = sampler.end()

    assert built == [
        {
            "country_iso_code": "FRA",
            "measure_power_secs": 1.0,
            "log_level": "error",
            "save_to_file": False,
            "save_to_api": False,
            "save_to_logger": False,
            "save_to_prometheus": False,
            "save_to_logfire": False,
            "allow_multiple_runs": True,
        }
    ]
    assert reading.sampler == "codecarbon"
    assert [d.domain for d in reading.domains] == ["gpu:0", "cpu:0"]
    # 1 kWh = 3.6 MJ
    assert [d.energy_j for d in reading.domains] == pytest.approx([9000.0, 3600.0])
    # the RAM figure is a watts-per-GB model: kept for reference, never in the total
    assert reading.details["ram_model_j"] == pytest.approx(720.0)
    # every codecarbon figure is a model: estimated, never part of a measured headline
    assert reading.estimated_j == pytest.approx(12600.0)
    assert reading.measured_j is None
    assert {d.method for d in reading.domains} == {"estimated"}
    assert {d.source for d in reading.domains} == {"codecarbon"}
    assert reading.method is None
    assert reading.confidence == "low"
    assert reading.duration_s == pytest.approx(5.0)
    assert "sum over all 2 GPUs" in reading.details["gpu_domain"]
    assert "estimated" in reading.details["method_note"]
    assert reading.details["country_iso_code"] == "FRA"
    assert reading.warnings == ()
    assert list(tmp_path.iterdir()) == []  # no emissions.csv, no lock file


def test_old_codecarbon_gets_only_the_keywords_it_knows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    module, built = fake_codecarbon(
        FakeEmissionsData(cpu_energy=0.0, gpu_energy=0.0, ram_energy=0.0, gpu_count=None),
        new_keywords=False,
    )
    sampler = CodeCarbonSampler(codecarbon_module=module)

    sampler.begin()
    reading = sampler.end()

    assert "allow_multiple_runs" not in built[0]
    assert "save_to_logfire" not in built[0]
    assert built[0]["save_to_file"] is False
    assert [d.domain for d in reading.domains] == ["cpu:0"]
    assert reading.details["gpu_domain"] == "codecarbon tracked no GPU"
    assert list(tmp_path.iterdir()) == [tmp_path / ".codecarbon.lock"]  # that version's own lock


def test_no_figures_from_codecarbon_are_null_not_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    module, _ = fake_codecarbon(None)
    sampler = CodeCarbonSampler(codecarbon_module=module)

    sampler.begin()
    reading = sampler.end()

    assert [(d.domain, d.energy_j) for d in reading.domains] == [("cpu:0", None)]
    assert reading.estimated_j is None and reading.measured_j is None
    assert "no figures" in reading.warnings[0]


def test_tracker_failure_is_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def __init__(self, **kwargs: Any) -> None:
            raise OSError("Folder './nowhere' doesn't exist !")

    module = ModuleType("codecarbon")
    module.OfflineEmissionsTracker = Broken  # type: ignore[attr-defined]
    sampler = CodeCarbonSampler(codecarbon_module=module)

    with pytest.raises(EnergyError, match="could not start tracking") as raised:
        sampler.begin()
    assert isinstance(raised.value.__cause__, OSError)


def test_end_without_begin_raises() -> None:
    module, _ = fake_codecarbon(None)
    with pytest.raises(EnergyError, match="without begin"):
        CodeCarbonSampler(codecarbon_module=module).end()
