"""CPU model and the TDP the estimate uses: user config > built-in table > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.errors import ConfigError
from llenergymeasure.system.cpu import (
    CPU_TDP_TABLE,
    DEFAULT_WATTS_PER_THREAD,
    cpu_model,
    resolve_cpu_tdp,
    visible_cpu_count,
)

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
"""


def test_cpu_model_reads_model_name(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    assert cpu_model(path) == "Intel(R) Xeon(R) Platinum 8480+"


def test_cpu_model_falls_back_to_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nHardware\t: BCM2835\n")
    monkeypatch.setattr("platform.processor", lambda: "arm")
    assert cpu_model(path) == "arm"
    monkeypatch.setattr("platform.processor", lambda: "")
    assert cpu_model(tmp_path / "missing") is None


def test_user_tdp_is_spread_over_visible_threads() -> None:
    tdp = resolve_cpu_tdp("Intel(R) Xeon(R) Platinum 8480+", 200.0, 16)
    assert tdp.source == "user config"
    assert tdp.watts_per_thread == pytest.approx(12.5)
    assert tdp.package_tdp_w == 200.0
    assert tdp.threads_per_package == 16


@pytest.mark.parametrize("watts", [0.0, -5.0, float("nan"), float("inf")])
def test_user_tdp_must_be_positive(watts: float) -> None:
    with pytest.raises(ConfigError, match="cpu_tdp_w"):
        resolve_cpu_tdp(None, watts, 4)


def test_visible_thread_count_must_be_positive() -> None:
    with pytest.raises(ValueError):
        resolve_cpu_tdp(None, None, 0)


@pytest.mark.parametrize(
    ("model", "label", "tdp_w", "threads"),
    [
        ("Intel(R) Xeon(R) Platinum 8480+", "Intel Xeon Platinum 8480+", 350.0, 112),
        ("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", "Intel Xeon Platinum 8380", 270.0, 80),
        ("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", "Intel Xeon Gold 6338", 205.0, 64),
        ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763", 280.0, 128),
        ("AMD EPYC 9654 96-Core Processor", "AMD EPYC 9654", 360.0, 192),
        ("AMD EPYC 7742 64-Core Processor", "AMD EPYC 7742", 225.0, 128),
        ("13th Gen Intel(R) Core(TM) i9-13900K", "Intel Core i9-13900K", 125.0, 32),
        ("12th Gen Intel(R) Core(TM) i7-12700H", "Intel Core i7-12700H", 45.0, 20),
        ("AMD Ryzen 9 7950X 16-Core Processor", "AMD Ryzen 9 7950X", 170.0, 32),
        ("Apple M1", "Apple M1 (approx.)", 20.0, 8),
        ("Apple M2", "Apple M2 (approx.)", 22.0, 8),
    ],
)
def test_table_tdp_is_spread_over_package_threads(
    model: str, label: str, tdp_w: float, threads: int
) -> None:
    tdp = resolve_cpu_tdp(model, None, 4)
    assert tdp.source == f"built-in table: {label}"
    assert tdp.package_tdp_w == tdp_w
    assert tdp.threads_per_package == threads
    assert tdp.watts_per_thread == pytest.approx(tdp_w / threads)


@pytest.mark.parametrize(
    "model",
    [
        "Intel(R) Xeon(R) Processor",  # a VM that hides the model
        "Intel(R) Xeon(R) Platinum 8380H CPU @ 2.90GHz",  # a different part, not 8380
        "AMD Ryzen 9 7950X3D 16-Core Processor",
        "Apple M1 Pro",
        "13th Gen Intel(R) Core(TM) i9-13900KS",
        None,
    ],
)
def test_unknown_cpu_falls_to_the_default(model: str | None) -> None:
    tdp = resolve_cpu_tdp(model, None, 2)
    assert tdp.source == "default per-thread"
    assert tdp.watts_per_thread == DEFAULT_WATTS_PER_THREAD == 10.0
    assert tdp.package_tdp_w is None
    assert tdp.threads_per_package is None


def test_table_rows_are_plausible() -> None:
    labels = [label for _, _, _, label in CPU_TDP_TABLE]
    assert len(labels) == len(set(labels)) >= 15
    for _, tdp_w, threads, _ in CPU_TDP_TABLE:
        assert 1.0 <= tdp_w / threads <= 16.0


def test_visible_cpu_count_is_positive() -> None:
    assert visible_cpu_count() >= 1
