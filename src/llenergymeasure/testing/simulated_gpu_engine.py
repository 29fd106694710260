"""The fake engine on simulated NVIDIA GPUs: it holds a CUDA context from load to close and
keeps the GPUs busy while it generates, as a real engine does to the board's power.

::

    nvml = h200_nvml()
    run_experiment(config, engine=SimulatedGpuEngine(nvml), nvml=nvml)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy.nvml_scope import gpu_indices_in_scope
from llenergymeasure.engines.base import GenerationOutput, PreparedPrompts, ProgressCallback
from llenergymeasure.engines.resolve import ResolvedModel
from llenergymeasure.records.base import Availability
from llenergymeasure.records.compute import ModelShape
from llenergymeasure.testing.fake_engine import FakeLoadedModel
from llenergymeasure.testing.simulated_nvml import SimulatedNvml

__all__ = ["SimulatedGpuEngine", "SimulatedGpuModel"]


class SimulatedGpuEngine:
    """The fake engine, placed on ``devices``: ``cuda:N`` is the N-th simulated GPU that
    ``CUDA_VISIBLE_DEVICES`` shows, as for a real engine (GPU N when it is unset).

    ``shape`` is the matmul shape its model reports, so that compute accounting (FLOPs,
    MFU against the simulated GPUs' names, MBU) has a model to count.
    """

    name = "fake"

    def __init__(
        self,
        nvml: SimulatedNvml,
        devices: Sequence[str] = ("cuda:0",),
        *,
        model_mib: float = 2048.0,
        shape: ModelShape | None = None,
    ) -> None:
        self.nvml = nvml
        self._devices = list(devices)
        self.model_mib = model_mib
        self.shape = shape
        self.loads = 0

    def probe(self) -> Availability:
        return Availability(True, "simulated GPUs", version="1")

    def devices(self, config: ExperimentConfig) -> list[str]:
        return list(self._devices)

    def preflight(self, config: ExperimentConfig, model: ResolvedModel) -> list[str]:
        return []

    def load(self, config: ExperimentConfig, model: ResolvedModel) -> SimulatedGpuModel:
        self.loads += 1
        uuids = [gpu.uuid for gpu in self.nvml.gpus]
        indices = gpu_indices_in_scope(self._devices, os.environ, uuids)
        return SimulatedGpuModel(
            config, self.nvml, indices, self._devices[0], self.model_mib, shape=self.shape
        )


class SimulatedGpuModel(FakeLoadedModel):
    """A fake loaded model that holds a context on each of its GPUs and busies them."""

    def __init__(
        self,
        config: ExperimentConfig,
        nvml: SimulatedNvml,
        indices: Sequence[int],
        device: str,
        model_mib: float,
        *,
        shape: ModelShape | None = None,
    ) -> None:
        names = tuple(nvml.gpus[i].name for i in indices)
        super().__init__(config, shape=shape, device_names=names)
        self.info = replace(self.info, device=device)
        self._nvml = nvml
        self._indices = list(indices)
        self._contexts = [(i, nvml.open_context(i, used_mib=model_mib)) for i in self._indices]

    def generate(
        self, prepared: PreparedPrompts, *, on_progress: ProgressCallback | None = None
    ) -> GenerationOutput:
        with ExitStack() as busy:
            for index in self._indices:
                busy.enter_context(self._nvml.busy(index))
            return super().generate(prepared, on_progress=on_progress)

    def close(self) -> None:
        contexts, self._contexts = self._contexts, []
        for index, context in contexts:
            self._nvml.close_context(index, context)
