"""A deterministic engine shipped in the package, so users and tests fake the same seam.

It "generates" word tokens derived from the prompt, sleeping ``prefill_latency_ms``
per batch and ``token_latency_ms`` per decoding step, and times itself exactly as
a real static-batching engine does.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from llenergymeasure.config.engines import FakeConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.engines.base import (
    BatchTiming,
    GenerationOutput,
    ModelInfo,
    NoDeviceHooks,
    PreparedPrompts,
    ProgressCallback,
)
from llenergymeasure.engines.resolve import ResolvedModel
from llenergymeasure.engines.timing import STATIC_BATCH_TIMING, requests_from_steps
from llenergymeasure.records.base import Availability
from llenergymeasure.records.compute import ModelShape

__all__ = ["FakeEngine", "FakeLoadedModel"]

_VOCAB = 50_000
# A made-up model size, so FLOPs and memory have something to report.
_FAKE_PARAMS = 1_000_000


class FakeEngine:
    """Deterministic engine for tests and demonstrations; always available.

    ``shape`` and ``device_names`` are what its model reports as its matmul shape and the
    accelerators it "runs" on, so that compute accounting can be tested against them.
    """

    name = "fake"

    def __init__(
        self, *, shape: ModelShape | None = None, device_names: tuple[str, ...] = ()
    ) -> None:
        self._shape = shape
        self._device_names = device_names

    def probe(self) -> Availability:
        return Availability(True, "built in", version="1")

    def devices(self, config: ExperimentConfig) -> list[str]:
        return ["cpu"]

    def preflight(self, config: ExperimentConfig, model: ResolvedModel) -> list[str]:
        return []

    def load(self, config: ExperimentConfig, model: ResolvedModel) -> FakeLoadedModel:
        return FakeLoadedModel(config, shape=self._shape, device_names=self._device_names)


@dataclass
class _Batch:
    indices: list[int]
    n_input_tokens: list[int]
    seeds: list[int]


class FakeLoadedModel(NoDeviceHooks):
    """The fake engine's loaded model: a word tokenizer and timed sleeps."""

    def __init__(
        self,
        config: ExperimentConfig,
        *,
        shape: ModelShape | None = None,
        device_names: tuple[str, ...] = (),
    ) -> None:
        self._config = config
        self._fake = config.fake or FakeConfig()
        self.info = ModelInfo(
            n_params=_FAKE_PARAMS,
            n_non_embedding_params=_FAKE_PARAMS,
            dtype="float32",
            device="cpu",
            engine_version="1",
            engine_args=self._fake.model_dump(),
            model_memory_mib=_FAKE_PARAMS * 4 / 2**20,
            shape=shape,
            device_names=device_names,
        )

    def encode(self, text: str) -> list[int]:
        return [zlib.crc32(word.encode()) % _VOCAB for word in text.split()]

    def decode(self, ids: list[int]) -> str:
        return " ".join(f"w{i}" for i in ids)

    def prepare(self, prompts: Sequence[str]) -> PreparedPrompts:
        limit = self._config.task.max_input_tokens
        lengths = tuple(max(1, min(len(self.encode(p)), limit)) for p in prompts)
        seeds = [zlib.crc32(p.encode()) for p in prompts]
        size = self._fake.batch_size
        batches = [
            _Batch(
                indices=list(range(start, min(start + size, len(prompts)))),
                n_input_tokens=list(lengths[start : start + size]),
                seeds=seeds[start : start + size],
            )
            for start in range(0, len(prompts), size)
        ]
        return PreparedPrompts(n_input_tokens=lengths, payload=batches)

    def _n_output(self) -> int:
        task = self._config.task
        wanted = task.dataset.output_len or self._fake.output_tokens or task.max_output_tokens
        return min(wanted, task.max_output_tokens)

    def generate(
        self, prepared: PreparedPrompts, *, on_progress: ProgressCallback | None = None
    ) -> GenerationOutput:
        n_out = self._n_output()
        records = []
        timings = []
        done = 0
        for batch in prepared.payload:
            start = time.perf_counter()
            _sleep_ms(self._fake.prefill_latency_ms)
            steps = []
            for _ in range(n_out):
                _sleep_ms(self._fake.token_latency_ms)
                steps.append(time.perf_counter())
            timings.append(BatchTiming(tuple(batch.indices), start, tuple(steps)))
            ids = [tuple((seed + k) % _VOCAB for k in range(n_out)) for seed in batch.seeds]
            records.extend(
                requests_from_steps(
                    batch_start_s=start,
                    step_times_s=steps,
                    indices=batch.indices,
                    n_input_tokens=batch.n_input_tokens,
                    n_output_tokens=[n_out] * len(batch.indices),
                    token_ids=ids,
                )
            )
            done += len(batch.indices)
            if on_progress is not None:
                on_progress(done, done * n_out)
        return GenerationOutput(
            requests=tuple(records), timing_definition=STATIC_BATCH_TIMING, batches=tuple(timings)
        )

    def close(self) -> None:
        return None


def _sleep_ms(ms: float) -> None:
    if ms > 0:
        time.sleep(ms / 1000.0)
