"""The llem sides of ``gpu_overhead.py``: llem's engine in measured windows (with or without
the energy sampler and the trace), a simulated GPU of slow NVML calls, and the bare side's
poller-free energy reader."""

from __future__ import annotations

import threading
import time
from typing import Any

from harness import Side, gpu_joules, process_cpu_s
from llenergymeasure.experiment.reporter import NullReporter, WindowSoFar

__all__ = ["LlemSide", "SlowNvml", "counter_reader"]


class LlemSide:
    """llem's engine loaded once; each call is one measured window, with or without the
    energy sampler and the power trace."""

    def __init__(self, config: dict[str, Any], emulate_nvml_ms: float = 0.0) -> None:
        from llenergymeasure.config.loading import validate_experiment
        from llenergymeasure.datasets import load_prompts
        from llenergymeasure.energy.registry import select_sampler, share_nvml_polling
        from llenergymeasure.engines.registry import get_engine
        from llenergymeasure.engines.resolve import resolve_model
        from llenergymeasure.system.cpu import cpu_model, resolve_cpu_tdp, visible_cpu_count

        self.config = validate_experiment(config)
        engine = get_engine("transformers")
        self.model = engine.load(self.config, resolve_model(self.config.task.model))
        task = self.config.task
        texts = [p.text for p in load_prompts(task.dataset, seed=task.random_seed)]
        self.prepared = self.model.prepare(texts)
        self.one_batch = self.model.prepare(texts[: self.config.batch_size])
        self.model.generate(self.one_batch)  # warm-up, as llem's fixed warm-up of one run
        tdp = resolve_cpu_tdp(cpu_model(), None, visible_cpu_count())
        self.selection = select_sampler(
            "auto",
            watts_per_thread=tdp.watts_per_thread,
            tdp_source=tdp.source,
            devices=engine.devices(self.config),
        )
        self.sampler = self.selection.sampler
        self.sources = list(self.selection.sources)
        self.emulated = emulate_nvml_ms > 0  # its GPU joules are the simulation's
        if self.emulated:
            self._emulate_gpu(emulate_nvml_ms / 1000.0)
        share_nvml_polling(self.sampler, self.sources)  # as llem run: one NVML poller
        self.achieved_rates: list[float] = []
        self.threads: set[str] = set()  # llem's threads seen while a measured window ran

    def _emulate_gpu(self, call_s: float) -> None:
        """An NVML sampler and telemetry source on a simulated H200 of slow NVML calls."""
        from llenergymeasure.energy.composite import CompositeSampler
        from llenergymeasure.energy.nvml import NvmlSampler, NvmlTelemetry

        slow = SlowNvml(call_s)
        parts = self.sampler.parts if isinstance(self.sampler, CompositeSampler) else ()
        emulated = NvmlSampler(["cuda:0"], nvml=slow, environ={})
        self.sampler = CompositeSampler([*(parts or [self.sampler]), emulated])
        self.sources.insert(0, NvmlTelemetry(["cuda:0"], nvml=slow, environ={}))

    def run(self, *, measured: bool) -> Side:
        """One window: with the sampler and trace (``measured``) or with neither."""
        from llenergymeasure.energy.estimate import NoEnergySampler
        from llenergymeasure.energy.trace import PowerTrace
        from llenergymeasure.experiment.measurement import measure_window

        interval_ms = self.config.measurement.sample_interval_ms
        sampler = self.sampler if measured else NoEnergySampler()
        trace = PowerTrace(self.sources if measured else [], interval_ms)
        if measured:
            trace.start()
        cpu0 = process_cpu_s()
        try:
            window = measure_window(self.model, self.prepared, sampler, _Threads(self), trace)
        finally:
            recorded = trace.stop()
        cpu_s = process_cpu_s() - cpu0
        rate = recorded.achieved_rate(recorded.marks["window_start"], recorded.marks["window_end"])
        if measured and rate is not None:
            self.achieved_rates.append(rate)
        n_tokens = sum(r.n_output_tokens for r in window.output.requests)
        per_batch = [b.step_end_s[-1] - b.start_s for b in window.output.batches if b.step_end_s]
        return Side(
            n_tokens / window.duration_s,
            n_tokens,
            window.duration_s,
            per_batch,
            gpu_joules(window.energy) if measured and not self.emulated else None,
            cpu_s,
        )

    def close(self) -> None:
        from llenergymeasure.energy.telemetry import close_sources

        close_sources(self.sources)
        self.model.close()


class _Threads(NullReporter):
    """Notes llem's threads alive each time a batch of a measured window completes."""

    def __init__(self, side: LlemSide) -> None:
        self._side = side

    def advance(self, done: int, so_far: WindowSoFar | None = None) -> None:
        names = {t.name for t in threading.enumerate() if t.name.startswith("llem-")}
        self._side.threads |= names


class SlowNvml:
    """A simulated H200 behind NVML calls that each take ``call_s``, GIL released."""

    def __init__(self, call_s: float) -> None:
        from llenergymeasure.testing.simulated_nvml import SimulatedGpu, SimulatedNvml

        self._nvml = SimulatedNvml([SimulatedGpu("NVIDIA H200", "GPU-emulated", power_w=300.0)])
        self._call_s = call_s

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._nvml, name)
        if not (name.startswith("nvml") and callable(found)):
            return found

        def slow(*args: Any) -> Any:
            time.sleep(self._call_s)  # releases the GIL, as the driver call does
            return found(*args)

        return slow


def counter_reader(device: str) -> Any:
    """The bare side's energy: NVML's counters read at the loop's ends, with no poller
    thread running beside it; None off a GPU (the figure compared is GPU J/token)."""
    if device != "cuda":
        return None
    from llenergymeasure.energy.nvml import NvmlSampler

    return NvmlSampler(["cuda:0"], poll_interval_s=None)
