"""The RAPL sampler and telemetry source, on a fake powercap tree in a temp folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.rapl import RaplSampler, RaplTelemetry, discover_rapl_zones
from llenergymeasure.energy.telemetry import TelemetrySource
from llenergymeasure.errors import EnergyError
from llenergymeasure.testing.fake_powercap import MAX_UJ, make_tree, set_counter, write_zone


class Script:
    """Returns the scripted values in order, one per call."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def __call__(self) -> float:
        return self.values.pop(0)


def refuse_reads(monkeypatch: pytest.MonkeyPatch, refused: set[Path]) -> None:
    """Make energy_uj of the given zones raise PermissionError (root ignores chmod)."""
    original = Path.read_text

    def read_text(self: Path, *args: Any, **kwargs: Any) -> str:
        if self.name == "energy_uj" and self.parent in refused:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)


def by_domain(reading: Any) -> dict[str, float | None]:
    return {d.domain: d.energy_j for d in reading.domains}


def test_discovery_maps_zone_names_to_domains(tmp_path: Path) -> None:
    zones = make_tree(tmp_path)

    found = discover_rapl_zones(tmp_path)

    assert [(z.path, z.name, z.domain) for z in found] == [
        (zones["cpu:0"], "package-0", "cpu:0"),
        (zones["core:0"], "core", None),
        (zones["dram:0"], "dram", "dram:0"),
        (zones["cpu:1"], "package-1", "cpu:1"),
        (zones["core:1"], "core", None),
        (zones["dram:1"], "dram", "dram:1"),
        (zones["psys"], "psys", None),
    ]
    assert all(z.readable and z.error is None for z in found)
    assert found[0].max_energy_range_uj == MAX_UJ
    assert found[2].max_energy_range_uj == 65_712_999_613


def test_window_energy_per_domain_from_counter_deltas(tmp_path: Path) -> None:
    zones = make_tree(tmp_path)
    set_counter(zones["cpu:0"], 1_000_000)
    set_counter(zones["dram:0"], 500_000)
    set_counter(zones["cpu:1"], 40_000_000)
    set_counter(zones["dram:1"], 7)
    set_counter(zones["core:0"], 0)
    sampler = RaplSampler(tmp_path, clock=Script(10.0, 14.0))
    assert isinstance(sampler, EnergySampler)

    sampler.begin()
    set_counter(zones["cpu:0"], 13_000_000)
    set_counter(zones["dram:0"], 2_500_000)
    set_counter(zones["cpu:1"], 47_500_000)
    set_counter(zones["core:0"], 9_000_000)  # inside cpu:0 already: must not be added
    set_counter(zones["psys"], 99_000_000)
    reading = sampler.end()

    assert reading.sampler == "rapl"
    assert [d.domain for d in reading.domains] == ["cpu:0", "dram:0", "cpu:1", "dram:1"]
    assert by_domain(reading) == {
        "cpu:0": pytest.approx(12.0),
        "dram:0": pytest.approx(2.0),
        "cpu:1": pytest.approx(7.5),
        "dram:1": None,  # did not advance in 4 s: stalled, no figure (never 0 J)
    }
    assert {d.method for d in reading.domains} == {"counter"}
    assert {d.source for d in reading.domains} == {"rapl"}
    assert reading.duration_s == pytest.approx(4.0)
    assert reading.confidence == "high"
    (stalled,) = reading.warnings
    assert str(stalled).startswith("dram:1: the RAPL counter did not advance over the 4.00 s")
    assert reading.details["zones"] == {
        "intel-rapl:0": "cpu:0",
        "intel-rapl:0:1": "dram:0",
        "intel-rapl:1": "cpu:1",
        "intel-rapl:1:1": "dram:1",
    }
    assert reading.details["skipped_zones"] == {
        "intel-rapl:0:0": "core",
        "intel-rapl:1:0": "core",
        "intel-rapl:2": "psys",
    }
    assert "twice" in reading.details["skipped_reason"]
    assert reading.details["n_wraps"] == 0


def test_a_counter_that_went_down_wrapped_once(tmp_path: Path) -> None:
    zones = make_tree(tmp_path, n_packages=1)
    set_counter(zones["cpu:0"], MAX_UJ - 328_850)
    sampler = RaplSampler(tmp_path, clock=Script(0.0, 1.0))

    sampler.begin()
    set_counter(zones["cpu:0"], 671_150)
    set_counter(zones["dram:0"], 100_000)
    reading = sampler.end()

    # (max - begin) + end = 328_850 + 671_150 µJ
    assert by_domain(reading)["cpu:0"] == pytest.approx(1.0)
    assert reading.details["n_wraps"] == 1
    assert reading.warnings == ()


def test_unreadable_counters_make_probe_say_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zones = make_tree(tmp_path)
    refuse_reads(monkeypatch, set(zones.values()))
    sampler = RaplSampler(tmp_path)

    availability = sampler.probe()

    assert not availability.available
    assert "permission denied" in availability.reason
    assert f"run as root or `sudo chmod o+r {tmp_path}/intel-rapl:*/energy_uj`" in (
        availability.reason
    )
    assert all(not z.readable for z in discover_rapl_zones(tmp_path))
    with pytest.raises(EnergyError, match="chmod o\\+r"):
        sampler.begin()


def test_the_default_root_is_the_kernel_powercap_folder() -> None:
    assert RaplSampler().root == Path("/sys/class/powercap")
    assert RaplTelemetry().root == Path("/sys/class/powercap")


def test_an_unreadable_dram_counter_is_null_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zones = make_tree(tmp_path, n_packages=1)
    refuse_reads(monkeypatch, {zones["dram:0"]})
    sampler = RaplSampler(tmp_path, clock=Script(0.0, 2.0))

    availability = sampler.probe()
    assert availability.available
    assert "readable for cpu:0" in availability.reason
    assert "intel-rapl:0:1 (dram:0)" in availability.reason
    assert "sudo chmod o+r" in availability.reason

    sampler.begin()
    set_counter(zones["cpu:0"], 3_000_000)
    reading = sampler.end()

    assert by_domain(reading) == {"cpu:0": pytest.approx(3.0), "dram:0": None}
    assert reading.measured_j == pytest.approx(3.0)
    (warning,) = reading.warnings
    assert warning.startswith("dram:0:")
    assert "sudo chmod o+r" in warning


def test_a_counter_that_vanishes_mid_window_is_null_with_a_warning(tmp_path: Path) -> None:
    zones = make_tree(tmp_path)
    sampler = RaplSampler(tmp_path, clock=Script(0.0, 1.0))

    sampler.begin()
    set_counter(zones["cpu:0"], 5_000_000)
    set_counter(zones["dram:0"], 300_000)
    set_counter(zones["dram:1"], 200_000)
    (zones["cpu:1"] / "energy_uj").unlink()
    reading = sampler.end()

    energy = by_domain(reading)
    assert energy["cpu:0"] == pytest.approx(5.0)
    assert energy["cpu:1"] is None
    assert energy["dram:1"] == pytest.approx(0.2)
    (warning,) = reading.warnings
    assert "cpu:1" in warning
    assert "became unreadable during the window" in warning


def test_a_counter_that_did_not_advance_is_null_never_zero_unless_the_window_is_tiny(
    tmp_path: Path,
) -> None:
    zones = make_tree(tmp_path, n_packages=1)
    set_counter(zones["cpu:0"], 1_000)
    for clock, stalled in ((Script(0.0, 2.0), True), (Script(0.0, 0.01), False)):
        sampler = RaplSampler(tmp_path, clock=clock)
        sampler.begin()
        set_counter(zones["dram:0"], 0)  # neither counter moves
        reading = sampler.end()
        energy = by_domain(reading)
        if stalled:
            assert energy == {"cpu:0": None, "dram:0": None}
            assert reading.measured_j is None
            assert len(reading.warnings) == 2
            assert all("did not advance" in w and "stalled or reset" in w for w in reading.warnings)
        else:  # 10 ms may fall between two updates: no evidence of a stall
            assert energy == {"cpu:0": 0.0, "dram:0": 0.0} and reading.warnings == ()


def test_amd_rapl_family_and_amd_under_intel_names(tmp_path: Path) -> None:
    amd = tmp_path / "amd"
    amd.mkdir()
    write_zone(amd / "amd-rapl:0", "package-0", energy_uj=100)
    write_zone(amd / "amd-rapl:0" / "amd-rapl:0:0", "core")
    # an EPYC on a recent kernel: intel-rapl names, package + core, no dram
    epyc = tmp_path / "epyc"
    epyc.mkdir()
    for n in range(2):
        write_zone(epyc / f"intel-rapl:{n}", f"package-{n}")
        write_zone(epyc / f"intel-rapl:{n}" / f"intel-rapl:{n}:0", "core")

    assert [z.domain for z in discover_rapl_zones(amd)] == ["cpu:0", None]
    assert [z.domain for z in discover_rapl_zones(epyc)] == ["cpu:0", None, "cpu:1", None]

    sampler = RaplSampler(amd, clock=Script(0.0, 1.0))
    assert sampler.probe().available
    sampler.begin()
    set_counter(amd / "amd-rapl:0", 2_000_100)
    reading = sampler.end()
    assert by_domain(reading) == {"cpu:0": pytest.approx(2.0)}
    assert reading.details["skipped_zones"] == {"amd-rapl:0:0": "core"}


def test_dies_of_one_package_add_up(tmp_path: Path) -> None:
    die0 = write_zone(tmp_path / "intel-rapl:0", "package-0-die-0")
    die1 = write_zone(tmp_path / "intel-rapl:1", "package-0-die-1")
    sampler = RaplSampler(tmp_path, clock=Script(0.0, 1.0))

    sampler.begin()
    set_counter(die0, 1_000_000)
    set_counter(die1, 2_000_000)
    reading = sampler.end()

    assert by_domain(reading) == {"cpu:0": pytest.approx(3.0)}


def test_no_zones_or_no_package(tmp_path: Path) -> None:
    assert discover_rapl_zones(tmp_path / "absent") == []
    missing = RaplSampler(tmp_path / "absent").probe()
    assert not missing.available
    assert "no RAPL powercap zones" in missing.reason

    write_zone(tmp_path / "intel-rapl:0", "psys")
    only_psys = RaplSampler(tmp_path).probe()
    assert not only_psys.available
    assert "no CPU package zone" in only_psys.reason
    assert "intel-rapl:0 (psys)" in only_psys.reason


def test_end_without_begin_raises(tmp_path: Path) -> None:
    make_tree(tmp_path)
    with pytest.raises(EnergyError, match="without begin"):
        RaplSampler(tmp_path).end()


def test_telemetry_power_from_two_reads_and_unwrapped_energy(tmp_path: Path) -> None:
    zones = make_tree(tmp_path)
    set_counter(zones["cpu:0"], 10_000_000)
    set_counter(zones["cpu:1"], MAX_UJ - 1_000_000)
    source = RaplTelemetry(tmp_path, clock=Script(100.0, 102.0, 103.0))
    assert isinstance(source, TelemetrySource)
    assert source.name == "rapl"
    assert source.devices() == ["cpu:0", "dram:0", "cpu:1", "dram:1"]

    first = {s.device: s for s in source.read()}
    assert first["cpu:0"].energy_j == pytest.approx(10.0)
    assert all(s.power_w is None for s in first.values())

    set_counter(zones["cpu:0"], 110_000_000)  # +100 J in 2 s
    set_counter(zones["cpu:1"], 3_000_000)  # wrapped: +4 J in 2 s
    second = {s.device: s for s in source.read()}
    assert second["cpu:0"].power_w == pytest.approx(50.0)
    assert second["cpu:1"].power_w == pytest.approx(2.0)
    assert second["cpu:1"].energy_j == pytest.approx((MAX_UJ + 3_000_000) / 1e6)
    assert second["dram:0"].power_w == 0.0

    set_counter(zones["cpu:1"], 4_000_000)  # no new wrap: +1 J in 1 s
    third = {s.device: s for s in source.read()}
    assert third["cpu:1"].power_w == pytest.approx(1.0)
    before, after = second["cpu:1"].energy_j, third["cpu:1"].energy_j
    assert before is not None and after is not None
    assert after - before == pytest.approx(1.0)
    source.close()


def test_telemetry_gives_no_figures_for_a_counter_it_cannot_read_now(tmp_path: Path) -> None:
    zones = make_tree(tmp_path, n_packages=1)
    source = RaplTelemetry(tmp_path, clock=Script(0.0, 1.0))
    source.read()
    (zones["dram:0"] / "energy_uj").unlink()

    samples = {s.device: s for s in source.read()}

    assert samples["dram:0"].energy_j is None
    assert samples["dram:0"].power_w is None
    assert samples["cpu:0"].power_w == 0.0


def test_telemetry_leaves_out_a_domain_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zones = make_tree(tmp_path, n_packages=1)
    refuse_reads(monkeypatch, {zones["dram:0"]})

    assert RaplTelemetry(tmp_path).devices() == ["cpu:0"]
