"""Which GPUs an engine runs on, from a simulated NVML and CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

from llenergymeasure.engines.placement import NvmlGpu, nvml_gpus, place, visible
from llenergymeasure.testing.simulated_nvml import (
    NVMLError_DriverNotLoaded,
    SimulatedGpu,
    SimulatedNvml,
)


def _nvml(*, mig_on_second: bool = False) -> SimulatedNvml:
    return SimulatedNvml(
        [
            SimulatedGpu("NVIDIA H200", "GPU-aaaa-1111"),
            SimulatedGpu("NVIDIA A100-SXM4-40GB", "GPU-bbbb-2222", mig_mode=mig_on_second),
            SimulatedGpu("Tesla T4", "GPU-cccc-3333", mig_mode=None),  # no MIG support
        ]
    )


def test_nvml_lists_every_gpu_without_a_cuda_context() -> None:
    nvml = _nvml(mig_on_second=True)
    gpus = nvml_gpus(nvml)
    assert [(g.index, g.name, g.mig_enabled) for g in gpus] == [
        (0, "NVIDIA H200", False),
        (1, "NVIDIA A100-SXM4-40GB", True),
        (2, "Tesla T4", False),
    ]
    assert nvml.init_count == 0  # shut down again


def test_no_driver_means_no_gpu() -> None:
    assert nvml_gpus(SimulatedNvml([], init_error=NVMLError_DriverNotLoaded)) == []
    assert nvml_gpus(SimulatedNvml([])) == []


def test_cuda_visible_devices_orders_and_hides_gpus() -> None:
    gpus = nvml_gpus(_nvml())
    assert [g.index for g, _ in visible(gpus, {}) if g] == [0, 1, 2]
    assert [g.index for g, _ in visible(gpus, {"CUDA_VISIBLE_DEVICES": "2,0"}) if g] == [2, 0]
    by_uuid = visible(gpus, {"CUDA_VISIBLE_DEVICES": "GPU-bbbb,cccc"})
    assert [g.index for g, _ in by_uuid if g] == [1, 2]
    # as in CUDA, the list ends at the first entry that names no GPU
    assert [g.index for g, _ in visible(gpus, {"CUDA_VISIBLE_DEVICES": "1,7,0"}) if g] == [1]
    assert visible(gpus, {"CUDA_VISIBLE_DEVICES": ""}) == []


def test_a_run_on_a_mig_slice_is_named_and_noted_as_one() -> None:
    gpus = nvml_gpus(_nvml(mig_on_second=True))
    where = place(1, gpus, {"CUDA_VISIBLE_DEVICES": "MIG-5c2f-0000"})
    assert where.devices == ("cuda:0",)
    assert where.gpus[0] is not None and where.gpus[0].index == 1  # the one MIG-enabled GPU
    assert where.names == ("NVIDIA A100-SXM4-40GB MIG slice",)
    note = where.note()
    assert note is not None and "gpu:1" in note and "measured as the whole GPU" in note
    assert where.as_dict()["mig"] == note


def test_placement_takes_the_first_devices_and_names_them() -> None:
    gpus = nvml_gpus(_nvml())
    where = place(2, gpus, {"CUDA_VISIBLE_DEVICES": "2,1"})
    assert where.devices == ("cuda:0", "cuda:1")
    assert where.names == ("Tesla T4", "NVIDIA A100-SXM4-40GB")
    assert where.note() is None
    assert where.as_dict() == {
        "devices": ["cuda:0", "cuda:1"],
        "gpus": ["Tesla T4", "NVIDIA A100-SXM4-40GB"],
        "nvml_indices": [2, 1],
        "mig": None,
    }
    assert place(4, gpus, {}).devices == ("cuda:0", "cuda:1", "cuda:2")  # only 3 exist
    unknown = place(
        1,
        [NvmlGpu(0, "x", "GPU-1", True), NvmlGpu(1, "y", "GPU-2", True)],
        {"CUDA_VISIBLE_DEVICES": "MIG-1"},
    )
    assert unknown.gpus == (None,) and unknown.names == ("unknown GPU MIG slice",)
