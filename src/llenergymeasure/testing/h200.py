"""An NVIDIA H200 SXM as NVML reported it, for tests and demonstrations.

Calibrated on a real H200 (141 GB, driver 580.159.04, power limit 700 W, persistence on,
MIG off): ``nvml-probe.csv`` of the project's H200 data, idle -> a bf16 matmul at full
load -> cool-down, polled every ~6.7 ms. :class:`SimulatedGpu`'s defaults are these
figures; a test replays the probe's load step through the simulation and checks the
energies it reports against the real ones (``tests/testing/test_h200_replay.py``).

=============================  ===========================================  ==========
what NVML showed               figure                                       simulated
=============================  ===========================================  ==========
counter update period          100 ms median (70-147 ms), 197 in 19.6 s    0.1 s
counter / power tick phases    counter ticks ~55 ms before power ticks     0.02 / 0.075 s
nvmlDeviceGetPowerUsage        = POWER_AVERAGE field, 1 s moving average    1.0 s window
idle, no CUDA context          79-86 W                                      80 W
idle, a context + a model      120 W                                        +40 W
full load                      685 W at the 700 W limit, reason 0x4         cap - 15 W
reasons                        0x1 at idle, 0x4 at the cap, never thermal   same
temperature                    48 °C idle -> 70 °C after 6 s of full load   first order
each NVML call                 ~1 ms                                        1 ms
=============================  ===========================================  ==========
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from llenergymeasure.testing.simulated_gpu import SimulatedGpu
from llenergymeasure.testing.simulated_nvml import SimulatedNvml

__all__ = ["H200_CUDA_DRIVER_VERSION", "H200_DRIVER_VERSION", "H200_NAME", "h200", "h200_nvml"]

H200_NAME = "NVIDIA H200"
H200_DRIVER_VERSION = "580.159.04"
H200_CUDA_DRIVER_VERSION = 13000  # CUDA 13.0, as nvmlSystemGetCudaDriverVersion encodes it
_UUID = "GPU-5f3c2a1e-0000-4000-8000-{:012d}"


def h200(uuid: str | None = None, *, index: int = 0, **overrides: Any) -> SimulatedGpu:
    """One simulated H200; ``overrides`` are :class:`SimulatedGpu` fields."""
    return SimulatedGpu(H200_NAME, uuid or _UUID.format(index), **overrides)


def h200_nvml(
    n_gpus: int = 1,
    *,
    clock: Callable[[], float] = time.monotonic,
    gpu: dict[str, Any] | None = None,
    **nvml: Any,
) -> SimulatedNvml:
    """A simulated NVML with ``n_gpus`` H200s (each with ``gpu`` overrides) and its driver."""
    return SimulatedNvml(
        [h200(index=i, **(gpu or {})) for i in range(n_gpus)],
        clock=clock,
        driver_version=H200_DRIVER_VERSION,
        cuda_driver_version=H200_CUDA_DRIVER_VERSION,
        **nvml,
    )
