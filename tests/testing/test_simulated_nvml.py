"""The simulated NVML: simulated GPUs answer like pynvml, in NVML's units, on a manual clock,
and behave as NVML did on a real H200 (sensor ticks, averaged power, contexts, the cap)."""

from __future__ import annotations

import ctypes
import math
import os
import sys
import threading

import pynvml
import pytest

from llenergymeasure.testing.h200 import H200_DRIVER_VERSION, h200, h200_nvml
from llenergymeasure.testing.simulated_nvml import (
    ManualClock,
    NVMLError,
    NVMLError_DriverNotLoaded,
    NVMLError_GpuIsLost,
    NVMLError_InvalidArgument,
    NVMLError_NotFound,
    NVMLError_NotSupported,
    NVMLError_Uninitialized,
    SimulatedGpu,
    SimulatedNvml,
)

INSTANT, AVERAGE = 186, 185


def ramp_w(t: float) -> float:
    """100 W rising to 300 W over 10 s, then flat."""
    return 100.0 + 20.0 * min(t, 10.0)


def started(*gpus: SimulatedGpu, clock: ManualClock, **nvml: object) -> SimulatedNvml:
    nvml_ = SimulatedNvml(gpus, clock=clock, call_latency_s=0.0, **nvml)  # type: ignore[arg-type]
    nvml_.nvmlInit()
    return nvml_


def continuous(name: str, uuid: str, **script: object) -> SimulatedGpu:
    """A GPU whose sensors publish continuously (no ticks): exact figures at any instant."""
    return SimulatedGpu(name, uuid, update_period_s=None, **script)  # type: ignore[arg-type]


# --- what NVML showed on the H200 ------------------------------------------------------


def test_the_counter_and_power_step_every_100_ms_not_continuously() -> None:
    clock = ManualClock()
    nvml = started(h200(power_w=500.0), clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    clock.set(1.021)  # just after a counter tick (phase 0.02 s)
    first = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    clock.set(1.110)  # 89 ms later, before the next tick
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(handle) == first
    clock.set(1.121)
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(handle) - first == 50_000  # 500 W x 0.1 s


def test_power_usage_is_a_1_s_average_and_the_instant_field_follows_the_load() -> None:
    clock = ManualClock()
    nvml = started(h200(), clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    nvml.open_context(0)
    clock.set(5.0)
    nvml.set_busy(0, True)
    clock.set(5.5)
    instant, average = nvml.nvmlDeviceGetFieldValues(handle, [INSTANT, AVERAGE])
    usage_w = nvml.nvmlDeviceGetPowerUsage(handle) / 1000
    assert instant.value.uiVal / 1000 == pytest.approx(685.0)  # at the cap
    assert average.value.uiVal == nvml.nvmlDeviceGetPowerUsage(handle)
    # the last tick (5.475 s) averages 0.475 s at 685 W and 0.525 s at 120 W
    assert usage_w == pytest.approx((0.475 * 685 + 0.525 * 120) / 1.0, rel=1e-3)
    clock.set(7.0)
    assert nvml.nvmlDeviceGetPowerUsage(handle) / 1000 == pytest.approx(685.0)


def test_a_cuda_context_raises_idle_power_from_80_to_120_w() -> None:
    clock = ManualClock()
    nvml = started(h200(), clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    clock.set(2.0)
    assert nvml.nvmlDeviceGetPowerUsage(handle) == 80_000
    assert nvml.nvmlDeviceGetCurrentClocksEventReasons(handle) == 0x1  # GPU idle
    context = nvml.open_context(0, used_mib=1500.0)
    clock.set(4.0)
    assert nvml.nvmlDeviceGetPowerUsage(handle) == 120_000
    assert nvml.nvmlDeviceGetCurrentClocksEventReasons(handle) == 0
    assert nvml.nvmlDeviceGetMemoryInfo(handle).used == 1500 * 1024 * 1024
    (process,) = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
    assert process.pid == os.getpid()
    assert nvml.nvmlSystemGetProcessName(process.pid) == "python"
    with pytest.raises(NVMLError_NotFound):
        nvml.nvmlSystemGetProcessName(1)
    nvml.close_context(0, context)
    clock.set(6.0)
    assert nvml.nvmlDeviceGetPowerUsage(handle) == 80_000
    assert nvml.nvmlDeviceGetComputeRunningProcesses(handle) == []


def test_full_load_sits_at_the_power_cap_with_sw_power_cap_and_its_counter() -> None:
    clock = ManualClock()
    nvml = started(h200(), clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    fields = [nvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP,
              nvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN]  # fmt: skip
    nvml.open_context(0)
    clock.set(1.0)
    nvml.set_busy(0, True)
    clock.set(7.0)
    assert nvml.nvmlDeviceGetCurrentClocksEventReasons(handle) == 0x4
    assert nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM) == 1500
    power_cap, thermal = nvml.nvmlDeviceGetFieldValues(handle, fields)
    assert power_cap.value.ullVal == 6_000_000_000  # 6 s, in ns
    assert thermal.value.ullVal == 0
    # 48 °C idle -> about 70 °C after 6 s of full load
    assert nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU) == pytest.approx(
        70, abs=2
    )


def test_each_call_takes_a_millisecond_of_the_clock() -> None:
    clock = ManualClock()
    nvml = h200_nvml(clock=clock)
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    before = clock()
    nvml.nvmlDeviceGetPowerUsage(handle)
    nvml.nvmlDeviceGetFieldValues(handle, [INSTANT])
    assert clock() - before == pytest.approx(0.002)
    assert nvml.nvmlSystemGetDriverVersion() == H200_DRIVER_VERSION
    assert nvml.nvmlSystemGetCudaDriverVersion() == 13000


def test_missing_fields_and_omitted_functions_behave_as_an_older_nvml() -> None:
    clock = ManualClock()
    nvml = started(
        h200(has_power_fields=False, has_reason_counters=False),
        clock=clock,
        omit=["nvmlDeviceGetCurrentClocksEventReasons"],
    )
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    instant, counter = nvml.nvmlDeviceGetFieldValues(handle, [INSTANT, 74])
    assert (instant.nvmlReturn, counter.nvmlReturn) == (3, 3)  # NVML_ERROR_NOT_SUPPORTED
    assert not hasattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons")
    assert nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle) == 0x1


# --- pynvml's own types -----------------------------------------------------------------


def test_values_come_back_as_pynvml_structures_and_process_objects() -> None:
    clock = ManualClock()
    nvml = started(h200(), clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    nvml.open_context(0, used_mib=1500.0)
    clock.set(1.0)
    assert isinstance(nvml.nvmlDeviceGetMemoryInfo(handle), pynvml.c_nvmlMemory_t)
    assert isinstance(nvml.nvmlDeviceGetUtilizationRates(handle), pynvml.c_nvmlUtilization_t)
    values = nvml.nvmlDeviceGetFieldValues(handle, [INSTANT, (AVERAGE, 0)])
    assert isinstance(values, ctypes.Array)
    assert all(isinstance(value, pynvml.c_nvmlFieldValue_t) for value in values)
    assert [(value.fieldId, value.valueType) for value in values] == [
        (INSTANT, pynvml.NVML_VALUE_TYPE_UNSIGNED_INT),
        (AVERAGE, pynvml.NVML_VALUE_TYPE_UNSIGNED_INT),
    ]
    assert isinstance(values[0].value, pynvml.c_nvmlValue_t)
    (process,) = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
    assert isinstance(process, pynvml.nvmlFriendlyObject)
    assert (process.usedGpuMemory, process.gpuInstanceId) == (1500 * 1024 * 1024, 0xFFFFFFFF)


def test_a_union_member_read_as_another_gives_the_same_bytes_reinterpreted() -> None:
    clock = ManualClock()
    nvml = started(h200(), clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    nvml.open_context(0)
    nvml.set_busy(0, True)
    clock.set(7.0)
    field = nvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP
    (counter,) = nvml.nvmlDeviceGetFieldValues(handle, [field])
    ns = counter.value.ullVal
    assert ns > 2**32  # wider than the 32-bit member, so reading that one must wrap
    raw = bytes(ctypes.c_uint64(ns))  # the union's bytes, as the counter left them
    assert bytes(counter.value) == raw
    assert counter.value.uiVal == ctypes.c_uint32.from_buffer_copy(raw).value == ns % 2**32
    assert counter.value.usVal == ctypes.c_uint16.from_buffer_copy(raw).value
    assert counter.value.dVal == ctypes.c_double.from_buffer_copy(raw).value != 0.0


def test_a_stand_in_in_place_of_pynvml_still_gets_nvidia_ml_pys_structures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # as a stand-in holds the name
    clock = ManualClock()
    nvml = started(h200(power_w=500.0), clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    clock.set(2.0)
    (instant,) = nvml.nvmlDeviceGetFieldValues(handle, [INSTANT])
    assert type(instant).__name__ == "c_nvmlFieldValue_t"
    assert isinstance(instant, ctypes.Structure)
    assert instant.value.uiVal == 500_000
    assert type(nvml.nvmlDeviceGetMemoryInfo(handle)).__name__ == "c_nvmlMemory_t"


# --- scripts, errors and the library ----------------------------------------------------


def test_constant_power_counter_is_exact_in_millijoules() -> None:
    clock = ManualClock()
    nvml = started(continuous("H100", "GPU-a", power_w=150.0), clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    before = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    clock.advance(12.0)
    after = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    assert isinstance(after, int)
    assert after - before == 1_800_000  # 150 W x 12 s = 1,800 J
    assert nvml.nvmlDeviceGetPowerUsage(handle) == 150_000  # mW


def test_scripted_ramp_counter_matches_the_analytic_integral() -> None:
    clock = ManualClock()
    nvml = started(continuous("H100", "GPU-a", power_w=ramp_w), clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    readings = []
    for _ in range(30):  # read often: the incremental integral must add up the same
        clock.advance(0.5)
        readings.append(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    # 0-10 s: 100*10 + 20*10^2/2 = 2,000 J; 10-15 s: 300 W x 5 s = 1,500 J
    assert readings[-1] / 1000 == pytest.approx(3500.0, abs=0.002)
    assert readings == sorted(readings)
    assert nvml.nvmlDeviceGetPowerUsage(handle) == 300_000


def test_nonlinear_script_counter_is_close_to_the_true_integral() -> None:
    clock = ManualClock()
    nvml = started(
        continuous("H100", "GPU-a", power_w=lambda t: 200.0 + 100.0 * math.sin(t)),
        clock=clock,
    )
    clock.set(7.0)
    truth_j = 200.0 * 7.0 + 100.0 * (1.0 - math.cos(7.0))
    counter_mj = nvml.nvmlDeviceGetTotalEnergyConsumption(nvml.nvmlDeviceGetHandleByIndex(0))
    assert counter_mj / 1000 == pytest.approx(truth_j, abs=0.002)
    assert nvml.energy_j(0, 7.0) == pytest.approx(truth_j, rel=1e-9)


def test_counter_starts_at_its_scripted_origin() -> None:
    clock = ManualClock(100.0)  # the script's time starts when the simulation is built
    nvml = started(
        continuous("H100", "GPU-a", power_w=50.0, energy_counter_start_mj=9_000_000_000),
        clock=clock,
    )
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(handle) == 9_000_000_000
    clock.advance(2.0)
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(handle) == 9_000_100_000


def test_gpu_without_a_counter_says_not_supported() -> None:
    nvml = started(
        SimulatedGpu("Tesla P100", "GPU-p", has_energy_counter=False), clock=ManualClock()
    )
    with pytest.raises(NVMLError_NotSupported) as caught:
        nvml.nvmlDeviceGetTotalEnergyConsumption(nvml.nvmlDeviceGetHandleByIndex(0))
    assert caught.value.value == 3
    assert isinstance(caught.value, nvml.NVMLError)
    assert str(caught.value) == "Not Supported"


def test_gpu_fails_from_its_scripted_time_on() -> None:
    clock = ManualClock()
    nvml = started(SimulatedGpu("H100", "GPU-a", power_w=100.0, fail_after_s=5.0), clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    clock.set(4.9)
    assert nvml.nvmlDeviceGetPowerUsage(handle) == 100_000
    clock.set(5.0)
    for call in (
        nvml.nvmlDeviceGetPowerUsage,
        nvml.nvmlDeviceGetTotalEnergyConsumption,
        nvml.nvmlDeviceGetUUID,
    ):
        with pytest.raises(NVMLError_GpuIsLost) as caught:
            call(handle)
        assert caught.value.value == 15
    assert str(caught.value) == "GPU is lost"


def test_calls_before_init_fail_and_init_is_reference_counted() -> None:
    nvml = SimulatedNvml([SimulatedGpu("H100", "GPU-a")], clock=ManualClock())
    with pytest.raises(NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlInit()
    nvml.nvmlInit()
    assert nvml.init_count == 2
    nvml.nvmlShutdown()
    assert nvml.nvmlDeviceGetCount() == 1
    nvml.nvmlShutdown()
    assert nvml.init_count == 0
    with pytest.raises(NVMLError_Uninitialized):
        nvml.nvmlShutdown()


def test_init_error_is_raised_by_nvml_init() -> None:
    nvml = SimulatedNvml([], clock=ManualClock(), init_error=NVMLError_DriverNotLoaded)
    with pytest.raises(NVMLError) as caught:
        nvml.nvmlInit()
    assert str(caught.value) == "Driver Not Loaded"
    assert nvml.init_count == 0


def test_bad_index_is_an_invalid_argument() -> None:
    nvml = started(SimulatedGpu("H100", "GPU-a"), clock=ManualClock())
    with pytest.raises(NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetHandleByIndex(1)


def test_identity_settings_and_readings_in_nvml_units() -> None:
    clock = ManualClock()
    gpu = SimulatedGpu(
        "NVIDIA A100-SXM4-80GB",
        "GPU-1234",
        temperature_c=lambda t: 40.0 + t,
        sm_clock_mhz=1410.0,
        utilisation_pct=87.0,
        memory_total_mib=81_920,
        memory_used_mib=2048.0,
        power_limit_w=300.0,
        default_power_limit_w=400.0,
        persistence_mode=False,
        mig_mode=None,
        ecc_enabled=True,
        compute_capability=(8, 0),
    )
    nvml = started(gpu, clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    clock.set(3.0)
    assert nvml.nvmlDeviceGetName(handle) == "NVIDIA A100-SXM4-80GB"
    assert nvml.nvmlDeviceGetUUID(handle) == "GPU-1234"
    assert nvml.nvmlSystemGetDriverVersion() == "550.54.15"
    assert nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU) == 43
    assert nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM) == 1410
    rates = nvml.nvmlDeviceGetUtilizationRates(handle)
    assert (rates.gpu, rates.memory) == (87, 87)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    assert memory.total == 81_920 * 1024 * 1024
    assert memory.used == 2048 * 1024 * 1024
    assert memory.free == memory.total - memory.used
    assert nvml.nvmlDeviceGetPowerManagementLimit(handle) == 300_000
    assert nvml.nvmlDeviceGetPowerManagementDefaultLimit(handle) == 400_000
    assert nvml.nvmlDeviceGetPersistenceMode(handle) == nvml.NVML_FEATURE_DISABLED
    assert nvml.nvmlDeviceGetEccMode(handle) == (1, 1)
    assert nvml.nvmlDeviceGetCudaComputeCapability(handle) == (8, 0)
    with pytest.raises(NVMLError_NotSupported):
        nvml.nvmlDeviceGetMigMode(handle)


def test_throttle_bits_follow_the_script_under_both_names() -> None:
    clock = ManualClock()
    nvml = SimulatedNvml([], clock=clock)
    thermal = nvml.nvmlClocksEventReasonSwThermalSlowdown | nvml.nvmlClocksEventReasonHwSlowdown
    nvml = started(
        SimulatedGpu(
            "H100", "GPU-a", power_w=100.0, throttle_reasons=lambda t: thermal if t >= 2.0 else 0
        ),
        clock=clock,
    )
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetCurrentClocksEventReasons(handle) == 0
    clock.set(2.0)
    assert nvml.nvmlDeviceGetCurrentClocksEventReasons(handle) == 0x28
    assert nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle) == 0x28


def test_reason_constants_match_nvml() -> None:
    nvml = SimulatedNvml([], clock=ManualClock())
    assert nvml.nvmlClocksEventReasonGpuIdle == 0x1
    assert nvml.nvmlClocksEventReasonSwPowerCap == 0x4
    assert nvml.nvmlClocksEventReasonHwSlowdown == 0x8
    assert nvml.nvmlClocksEventReasonSwThermalSlowdown == 0x20
    assert nvml.nvmlClocksEventReasonHwThermalSlowdown == 0x40
    assert nvml.nvmlClocksEventReasonHwPowerBrakeSlowdown == 0x80
    assert nvml.nvmlClocksThrottleReasonSwPowerCap == nvml.nvmlClocksEventReasonSwPowerCap
    assert nvml.nvmlClocksThrottleReasonHwPowerBrakeSlowdown == 0x80


def test_counter_reads_from_two_threads_stay_consistent() -> None:
    clock = ManualClock()
    nvml = started(continuous("H100", "GPU-a", power_w=ramp_w), clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    clock.set(10.0)
    results: list[int] = []

    def read() -> None:
        results.append(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(results) == 4
    assert {round(r / 1000, 2) for r in results} == {2000.0}


def test_manual_clock_does_not_go_back() -> None:
    clock = ManualClock(5.0)
    with pytest.raises(ValueError, match="does not go back"):
        clock.set(4.0)
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1.0)
    assert clock.advance(0.5) == 5.5
