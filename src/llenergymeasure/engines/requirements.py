"""What an engine needs of the host's GPUs, stated by the engine and checked by pre-flight.

Engines may not read host facts themselves (``system`` is a sibling layer), so an
engine that only runs on NVIDIA GPUs of some generation says so here, and
``experiment/preflight.py`` compares it with what NVML reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from llenergymeasure.config.models import ExperimentConfig

__all__ = ["GpuRequirement", "NeedsGpu"]


@dataclass(frozen=True)
class GpuRequirement:
    """``n_gpus`` visible NVIDIA GPUs of at least ``min_compute_capability``; ``why`` names
    the feature that needs them (e.g. ``"FP8 (tensorrt.quant_config.quant_algo: FP8)"``)."""

    n_gpus: int
    min_compute_capability: tuple[int, int]
    why: str


@runtime_checkable
class NeedsGpu(Protocol):
    """An engine that runs only on NVIDIA GPUs of a minimum compute capability."""

    def gpu_requirements(self, config: ExperimentConfig) -> list[GpuRequirement]:
        """Every GPU requirement of this config, the engine's own first."""
        ...
