"""GPU facts from (simulated) NVML, and the warnings their settings call for."""

from __future__ import annotations

import sys

import pytest

from llenergymeasure.system.gpus import GpuInfo, GpuProcess, gpu_warnings, list_gpus, survey_gpus
from llenergymeasure.testing.h200 import h200_nvml
from llenergymeasure.testing.simulated_nvml import (
    ManualClock,
    NVMLError_DriverNotLoaded,
    SimulatedGpu,
    SimulatedNvml,
)


def info(**overrides: object) -> GpuInfo:
    fields: dict[str, object] = {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-aaaa",
        "memory_total_mib": 81_559.0,
        "power_limit_w": 700.0,
        "default_power_limit_w": 700.0,
        "persistence_mode": True,
        "mig_mode": False,
        "ecc_enabled": True,
        "compute_capability": (9, 0),
        "sm_clock_mhz": 1980.0,
        "temperature_c": 40.0,
    }
    fields.update(overrides)
    return GpuInfo(**fields)  # type: ignore[arg-type]


def test_list_gpus_reads_every_fact_from_the_simulated_module() -> None:
    clock = ManualClock()
    nvml = SimulatedNvml(
        [
            SimulatedGpu(
                "NVIDIA H100 80GB HBM3",
                "GPU-aaaa",
                memory_total_mib=81_559,
                power_limit_w=700.0,
                default_power_limit_w=700.0,
                sm_clock_mhz=1980.0,
                temperature_c=38.0,
                compute_capability=(9, 0),
            ),
            SimulatedGpu(
                "Tesla V100-SXM2-16GB",
                "GPU-bbbb",
                memory_total_mib=16_384,
                power_limit_w=250.0,
                default_power_limit_w=300.0,
                persistence_mode=False,
                mig_mode=None,
                ecc_enabled=False,
                compute_capability=(7, 0),
            ),
        ],
        clock=clock,
        driver_version="535.104.05",
    )
    gpus, driver, reason = list_gpus(nvml)

    assert driver == "535.104.05"
    assert reason is None
    assert gpus[0] == GpuInfo(
        index=0,
        name="NVIDIA H100 80GB HBM3",
        uuid="GPU-aaaa",
        memory_total_mib=81_559.0,
        power_limit_w=700.0,
        default_power_limit_w=700.0,
        persistence_mode=True,
        mig_mode=False,
        ecc_enabled=True,
        compute_capability=(9, 0),
        sm_clock_mhz=1980.0,
        temperature_c=38.0,
        memory_free_mib=81_559.0,
        processes=(),
    )
    v100 = gpus[1]
    assert (v100.index, v100.uuid, v100.device) == (1, "GPU-bbbb", "gpu:1")
    assert v100.memory_total_mib == 16_384.0
    assert (v100.power_limit_w, v100.default_power_limit_w) == (250.0, 300.0)
    assert v100.persistence_mode is False
    assert v100.mig_mode is None  # not supported on this GPU
    assert v100.ecc_enabled is False
    assert v100.compute_capability == (7, 0)
    assert nvml.init_count == 0  # shut down again


def test_list_gpus_without_pynvml_is_empty_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    gpus, driver, reason = list_gpus()
    assert gpus == []
    assert driver is None
    assert reason is not None
    assert reason.startswith("pynvml not installed")
    assert "nvidia-ml-py" in reason


def test_list_gpus_reports_an_nvml_init_failure() -> None:
    nvml = SimulatedNvml([], clock=ManualClock(), init_error=NVMLError_DriverNotLoaded)
    assert list_gpus(nvml) == ([], None, "NVML could not initialise: Driver Not Loaded")


def test_list_gpus_with_no_gpu_says_so() -> None:
    nvml = SimulatedNvml([], clock=ManualClock())
    gpus, driver, reason = list_gpus(nvml)
    assert gpus == []
    assert driver == "550.54.15"
    assert reason is not None
    assert "no NVIDIA GPU" in reason
    assert nvml.init_count == 0


def test_list_gpus_skips_a_lost_gpu_and_keeps_the_others() -> None:
    nvml = SimulatedNvml(
        [SimulatedGpu("H100", "GPU-aaaa", fail_after_s=0.0), SimulatedGpu("H100", "GPU-bbbb")],
        clock=ManualClock(),
    )
    gpus, _, reason = list_gpus(nvml)
    assert [g.uuid for g in gpus] == ["GPU-bbbb"]
    assert reason is None

    only_lost = SimulatedNvml([SimulatedGpu("H100", "GPU-aaaa", fail_after_s=0.0)])
    gpus, _, reason = list_gpus(only_lost)
    assert gpus == []
    assert reason is not None
    assert "GPU 0: GPU is lost" in reason


def test_no_warnings_for_a_well_set_gpu() -> None:
    assert gpu_warnings([info()]) == []


def test_persistence_mode_off_warns_with_the_remedy() -> None:
    (warning,) = gpu_warnings([info(index=3, persistence_mode=False)])
    assert "gpu:3" in warning
    assert "persistence mode is off" in warning
    assert "nvidia-smi -i 3 -pm 1" in warning


def test_power_limit_below_default_warns_with_the_remedy() -> None:
    (warning,) = gpu_warnings([info(power_limit_w=500.0, default_power_limit_w=700.0)])
    assert "500 W is below the default 700 W" in warning
    assert "nvidia-smi -i 0 -pl 700" in warning


@pytest.mark.parametrize(
    ("limit_w", "default_w", "persistence"),
    [(700.0, 700.0, True), (699.8, 700.0, True), (None, 700.0, None), (750.0, 700.0, True)],
    ids=["equal", "rounding", "unknown", "raised"],
)
def test_no_warning_when_not_below_default_or_unknown(
    limit_w: float | None, default_w: float, persistence: bool | None
) -> None:
    gpu = info(power_limit_w=limit_w, default_power_limit_w=default_w, persistence_mode=persistence)
    assert gpu_warnings([gpu]) == []


def test_warnings_cover_every_gpu() -> None:
    warnings = gpu_warnings(
        [info(index=0, persistence_mode=False), info(index=1, power_limit_w=300.0)]
    )
    assert len(warnings) == 2
    assert "gpu:0" in warnings[0]
    assert "gpu:1" in warnings[1]


def test_survey_lists_free_memory_processes_and_the_cuda_version() -> None:
    clock = ManualClock()
    nvml = h200_nvml(2, clock=clock)
    nvml.open_context(1, pid=4321, name="other-job", used_mib=40_000.0)
    survey = survey_gpus(nvml)
    assert (survey.driver_version, survey.cuda_version) == ("580.159.04", "13.0")
    idle, busy = survey.gpus
    assert idle.processes == ()
    assert busy.processes == (GpuProcess(4321, 40_000.0, "other-job"),)
    assert busy.memory_free_mib == pytest.approx(143_771 - 40_000)
    (record, _) = survey.accelerators()
    assert record == {
        "index": 0,
        "name": "NVIDIA H200",
        "uuid": idle.uuid,
        "memory_total_mib": 143_771.0,
        "power_limit_w": 700.0,
        "default_power_limit_w": 700.0,
        "persistence_mode": True,
        "mig_mode": False,
        "ecc_enabled": True,
        "compute_capability": "9.0",
    }


def test_a_module_without_optional_calls_still_lists_its_gpus() -> None:
    nvml = h200_nvml(
        clock=ManualClock(),
        omit=[
            "nvmlDeviceGetComputeRunningProcesses",
            "nvmlSystemGetCudaDriverVersion",
            "nvmlDeviceGetPowerManagementDefaultLimit",
        ],
    )
    survey = survey_gpus(nvml)
    (gpu,) = survey.gpus
    assert gpu.processes is None and gpu.default_power_limit_w is None
    assert survey.cuda_version is None
    assert gpu.power_limit_w == 700.0
