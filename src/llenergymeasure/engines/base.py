"""The engine protocol: ``Engine.load`` -> ``LoadedModel.prepare`` -> ``generate`` -> ``close``.

Tokenisation and batching happen in ``prepare`` (outside the measured window);
``generate`` does only inference and timing, and returns per-request records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.engines.resolve import ResolvedModel
from llenergymeasure.records.base import Availability
from llenergymeasure.records.compute import ModelShape

__all__ = [
    "Availability",
    "BatchTiming",
    "Engine",
    "GenerationOutput",
    "LoadedModel",
    "ModelInfo",
    "NoDeviceHooks",
    "PreparedPrompts",
    "ProgressCallback",
    "RequestOutput",
]


class ProgressCallback(Protocol):
    """Called after each batch (each request, for engines that stream) with the number of
    requests completed so far and, where the engine has counted them, their output tokens."""

    def __call__(self, done: int, n_output_tokens: int | None = None) -> None: ...


@dataclass(frozen=True)
class ModelInfo:
    """What was actually loaded, and with which arguments."""

    n_params: int | None
    n_non_embedding_params: int | None
    dtype: str | None
    device: str
    engine_version: str | None
    engine_args: dict[str, Any] = field(default_factory=dict)
    model_memory_mib: float | None = None
    notes: tuple[str, ...] = ()
    # The matmul shape from the model's config, for FLOPs; None when it does not describe one.
    shape: ModelShape | None = None
    # The accelerators the model runs on, as the device reports its name; empty on the CPU.
    device_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreparedPrompts:
    """Prompts tokenised and batched by the engine; ``payload`` is engine-private."""

    n_input_tokens: tuple[int, ...]
    payload: Any

    @property
    def n_prompts(self) -> int:
        return len(self.n_input_tokens)


@dataclass(frozen=True)
class RequestOutput:
    """One request's outcome; times in milliseconds from the start of its batch."""

    index: int
    n_input_tokens: int
    n_output_tokens: int
    latency_ms: float
    ttft_ms: float | None
    itl_ms: float | None
    token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class BatchTiming:
    """When one static batch started and when each of its decoding steps completed.

    Times are ``time.perf_counter()`` seconds (the power trace's clock). ``step_end_s[0]``
    ends the prefill (the batch's first token); later steps are decode steps.
    """

    indices: tuple[int, ...]
    start_s: float
    step_end_s: tuple[float, ...]


@dataclass(frozen=True)
class GenerationOutput:
    """All requests of one ``generate`` call; ``batches`` when the engine times its steps."""

    requests: tuple[RequestOutput, ...]
    timing_definition: str
    batches: tuple[BatchTiming, ...] = ()


@runtime_checkable
class LoadedModel(Protocol):
    """A model held in memory by an engine, ready to generate."""

    info: ModelInfo

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens (for synthetic prompts)."""
        ...

    def decode(self, ids: list[int]) -> str:
        """Text of token ids."""
        ...

    def prepare(self, prompts: Sequence[str]) -> PreparedPrompts:
        """Apply the chat template, truncate to ``max_input_tokens``, tokenise and batch."""
        ...

    def generate(
        self, prepared: PreparedPrompts, *, on_progress: ProgressCallback | None = None
    ) -> GenerationOutput:
        """Run inference over every prepared prompt; the only work inside the window."""
        ...

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU)."""
        ...

    def reset_peak_memory(self) -> None:
        """Start a fresh device peak-memory count."""
        ...

    def peak_device_memory_mib(self) -> float | None:
        """Peak device memory since the last reset; None on the CPU."""
        ...

    def close(self) -> None:
        """Release the model and device memory."""
        ...


class NoDeviceHooks:
    """The device hooks of a model whose engine returns only when the device is done and
    whose device memory lives in other processes (vLLM, TensorRT-LLM), or that has none."""

    def synchronize(self) -> None:
        return None

    def reset_peak_memory(self) -> None:
        return None

    def peak_device_memory_mib(self) -> float | None:
        return None


@runtime_checkable
class Engine(Protocol):
    """An inference library behind the protocol. Construct cheaply; import lazily."""

    name: str

    def probe(self) -> Availability:
        """Is the library importable here? Must not load a model."""
        ...

    def devices(self, config: ExperimentConfig) -> list[str]:
        """The devices this config would run on, e.g. ``["cpu"]`` or ``["cuda:0"]``."""
        ...

    def preflight(self, config: ExperimentConfig, model: ResolvedModel) -> list[str]:
        """Host problems that would stop this config from running (empty when none)."""
        ...

    def load(self, config: ExperimentConfig, model: ResolvedModel) -> LoadedModel:
        """Load the model; raises EngineError."""
        ...
