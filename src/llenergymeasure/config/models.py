"""Pydantic models of WHAT to run: one experiment's configuration (DESIGN.md §3.1).

Every model forbids unknown keys. Validators are pure: they check the config
against itself, never against the host (that is pre-flight's job).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    model_validator,
)

from llenergymeasure.config.base import StrictModel
from llenergymeasure.config.engines import (
    FakeConfig,
    TensorRTConfig,
    TransformersConfig,
    VLLMConfig,
)
from llenergymeasure.config.serving import ServingConfig

__all__ = [
    "ENGINE_NAMES",
    "GPU_MIN_WINDOW_S",
    "MODES",
    "SAMPLING_PRESETS",
    "BaselineConfig",
    "DatasetConfig",
    "ExperimentConfig",
    "MeasurementConfig",
    "TaskConfig",
    "WarmupConfig",
]

EngineName = Literal["transformers", "vllm", "tensorrt", "fake"]
ENGINE_NAMES: tuple[str, ...] = get_args(EngineName)
Mode = Literal["offline", "serving"]
MODES: tuple[str, ...] = get_args(Mode)
# Engines whose OpenAI-compatible server llem can launch (`serving.server: launch`).
_SERVABLE_ENGINES = ("vllm",)
EnergySamplerName = Literal["auto", "nvml", "zeus", "rapl", "codecarbon", "estimate", "none"]
DatasetOrder = Literal["interleaved", "grouped", "shuffled"]
SamplingPreset = Literal["deterministic", "standard", "creative", "factual"]

# Decoding presets. Values the user sets explicitly always win over a preset.
SAMPLING_PRESETS: dict[str, dict[str, Any]] = {
    "deterministic": {"do_sample": False},
    "standard": {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 50},
    "creative": {"do_sample": True, "temperature": 1.0, "top_p": 0.95, "top_k": 100},
    "factual": {"do_sample": True, "temperature": 0.3, "top_p": 0.85, "top_k": 20},
}


# --------------------------------------------------------------------------- task


class DatasetConfig(StrictModel):
    """Where the prompts come from and in which order they are sent."""

    source: str = Field(
        "builtin",
        min_length=1,
        description="`builtin`, a built-in set name, a `.jsonl` path, or `synthetic`",
    )
    n_prompts: int = Field(100, ge=1, le=1_000_000)
    order: DatasetOrder = "interleaved"
    input_len: int | None = Field(None, ge=1, le=1_048_576)
    output_len: int | None = Field(None, ge=1, le=1_048_576)

    @model_validator(mode="after")
    def _synthetic_lengths(self) -> DatasetConfig:
        if self.source == "synthetic" and self.input_len is None:
            raise ValueError(
                "`synthetic` prompts need `task.dataset.input_len` (tokens per prompt)"
            )
        if self.source != "synthetic" and (self.input_len is not None):
            raise ValueError("`task.dataset.input_len` only applies to `source: synthetic`")
        return self


class TaskConfig(StrictModel):
    """The workload: model, prompts, token limits and seed."""

    model: str = Field("smollm2-135m", min_length=1)
    dataset: DatasetConfig = DatasetConfig()
    max_input_tokens: int = Field(256, ge=1, le=1_048_576)
    max_output_tokens: int = Field(256, ge=1, le=1_048_576)
    random_seed: int = Field(42, ge=0, lt=2**32)
    chat_template: bool | None = Field(
        None, description="apply the model's chat template; None = when the model has one"
    )
    # Only a literal true runs a model folder's own code: no "yes", 1 or "on".
    trust_remote_code: StrictBool = False

    @model_validator(mode="after")
    def _output_len_fits(self) -> TaskConfig:
        out = self.dataset.output_len
        if out is not None and out > self.max_output_tokens:
            raise ValueError(
                f"`task.dataset.output_len` ({out}) exceeds `task.max_output_tokens` "
                f"({self.max_output_tokens})"
            )
        if self.dataset.input_len is not None and self.dataset.input_len > self.max_input_tokens:
            raise ValueError(
                f"`task.dataset.input_len` ({self.dataset.input_len}) exceeds "
                f"`task.max_input_tokens` ({self.max_input_tokens})"
            )
        return self


# ------------------------------------------------------------------ transformers


# -------------------------------------------------------------------------- vllm


# --------------------------------------------------------------------- tensorrt


# -------------------------------------------------------------------------- fake


# ------------------------------------------------------------------ measurement

# The NVML energy counter steps every ~100 ms (70-147 ms on an H200): a 10 s window keeps its
# resolution under 1 % of the figure.
GPU_MIN_WINDOW_S = 10.0


class WarmupConfig(StrictModel):
    """Warm-up before the measured window: a fixed count, or until latency converges."""

    enabled: bool = True
    n_warmup: int = Field(5, ge=0, le=10_000)
    thermal_floor_s: float = Field(60.0, ge=0.0, le=86_400, allow_inf_nan=False)
    convergence: bool = Field(False, description="repeat until the latency CV is below threshold")
    cv_threshold: float = Field(0.05, gt=0.0, le=1.0, allow_inf_nan=False)
    window: int = Field(3, ge=2, le=1_000)
    min: int = Field(5, ge=1, le=10_000)
    max: int = Field(20, ge=1, le=10_000)

    @model_validator(mode="after")
    def _bounds(self) -> WarmupConfig:
        if self.convergence and self.min > self.max:
            raise ValueError(f"warm-up `min` ({self.min}) exceeds `max` ({self.max})")
        if self.convergence and self.window > self.max:
            raise ValueError(f"warm-up `window` ({self.window}) exceeds `max` ({self.max})")
        return self


class BaselineConfig(StrictModel):
    """Idle-power baseline taken before the model loads."""

    enabled: bool = True
    duration_s: float = Field(30.0, gt=0.0, le=3_600, allow_inf_nan=False)
    strategy: Literal["fresh", "cached", "validated"] = "validated"
    cache_ttl_s: float = Field(7200.0, gt=0.0, allow_inf_nan=False)
    validate_every: int = Field(5, ge=1)
    spot_check_s: float = Field(5.0, gt=0.0, allow_inf_nan=False)
    drift_threshold: float = Field(0.10, gt=0.0, le=10.0, allow_inf_nan=False)


class MeasurementConfig(StrictModel):
    """How energy and time are measured."""

    energy_sampler: EnergySamplerName = "auto"
    sample_interval_ms: int = Field(100, ge=1, le=60_000)
    min_window_s: float | None = Field(
        None,
        ge=0.0,
        le=86_400,
        allow_inf_nan=False,
        description=(
            "the measured window repeats the prompt set until it lasts this long; "
            "None: 10 s when a GPU is measured, no minimum otherwise"
        ),
    )
    devices: list[str] | None = Field(
        None,
        description=(
            "the devices whose energy is measured, e.g. [cuda:0, cuda:1]; "
            "None: the devices the engine runs on"
        ),
    )
    warmup: WarmupConfig = WarmupConfig()
    baseline: BaselineConfig = BaselineConfig()
    carbon_intensity_g_per_kwh: float | None = Field(None, ge=0.0, le=10_000, allow_inf_nan=False)
    pue: float = Field(1.0, ge=1.0, le=10.0, allow_inf_nan=False)

    def min_window_for(self, *, on_gpu: bool) -> float:
        """The minimum window length in seconds: the configured one, else 10 s on a GPU
        (the NVML counter steps every ~100 ms) and none elsewhere."""
        if self.min_window_s is not None:
            return self.min_window_s
        return GPU_MIN_WINDOW_S if on_gpu else 0.0


# ------------------------------------------------------------------- experiment

_ENGINES_WITH_SAMPLING = ("transformers", "vllm", "tensorrt")


def _preset_values(engine: str, preset: str) -> dict[str, Any]:
    """The sampling fields a preset sets in one engine's section."""
    values = dict(SAMPLING_PRESETS[preset])
    do_sample = bool(values.pop("do_sample"))
    if engine == "transformers":
        return {"do_sample": do_sample, **values}
    return values if do_sample else {"temperature": 0.0}


class ExperimentConfig(StrictModel):
    """One experiment: a model, a workload, an engine, and how to measure it."""

    task: TaskConfig = TaskConfig()
    mode: Mode = Field(
        "offline", description="offline: generate over the prompt set; serving: load a server"
    )
    engine: EngineName = "transformers"
    transformers: TransformersConfig | None = None
    vllm: VLLMConfig | None = None
    tensorrt: TensorRTConfig | None = None
    fake: FakeConfig | None = None
    measurement: MeasurementConfig = MeasurementConfig()
    sampling_preset: SamplingPreset | None = None
    serving: ServingConfig | None = Field(
        None, description="mode: serving only: the server and the load (see docs/serving.md)"
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset_and_section(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        engine = data.get("engine", "transformers")
        if not isinstance(engine, str) or engine not in ENGINE_NAMES:
            return data
        data = dict(data)
        section = data.get(engine)
        if section is None:
            section = {}
        elif isinstance(section, BaseModel):
            section = section.model_dump(exclude_unset=True)
        elif not isinstance(section, dict):
            return data
        preset = data.get("sampling_preset")
        if (
            isinstance(preset, str)
            and preset in SAMPLING_PRESETS
            and engine in _ENGINES_WITH_SAMPLING
        ):
            sampling = section.get("sampling") or {}
            if isinstance(sampling, BaseModel):
                sampling = sampling.model_dump(exclude_unset=True)
            if isinstance(sampling, dict):
                merged = {**_preset_values(engine, preset), **sampling}
                section = {**section, "sampling": merged}
        data[engine] = section
        return data

    @model_validator(mode="after")
    def _sections_match_engine(self) -> ExperimentConfig:
        others = [
            name for name in ENGINE_NAMES if name != self.engine and getattr(self, name) is not None
        ]
        if others:
            listed = ", ".join(f"`{name}:`" for name in others)
            raise ValueError(
                f"section {listed} does not match `engine: {self.engine}`; "
                f"remove it or set `engine: {others[0]}`"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _serving_section_of_serving_mode(cls, data: Any) -> Any:
        # Filled in, so that the resolved config (and its hash) says how the load ran.
        if isinstance(data, dict) and data.get("mode") == "serving" and data.get("serving") is None:
            return {**data, "serving": {}}
        return data

    @model_validator(mode="after")
    def _serving_fits_mode(self) -> ExperimentConfig:
        if self.mode == "offline":
            if self.serving is not None:
                raise ValueError("the `serving:` section needs `mode: serving`")
            return self
        serving = self.serving or ServingConfig()
        if serving.server == "launch" and self.engine not in _SERVABLE_ENGINES:
            raise ValueError(
                f"`mode: serving` launches the engine's server, which llem can do for "
                f"{', '.join(f'`engine: {e}`' for e in _SERVABLE_ENGINES)}, not `engine: "
                f"{self.engine}`; or measure a running server with `serving.endpoint: URL`"
            )
        if self.task.dataset.source == "synthetic":
            raise ValueError(
                "`mode: serving` sends prompt texts; use the built-in set or a .jsonl file, "
                "not `synthetic`"
            )
        return self

    @property
    def batch_size(self) -> int:
        """Requests generated together (engines with continuous batching report their cap)."""
        if self.engine == "transformers" and self.transformers is not None:
            return self.transformers.batch_size
        if self.engine == "fake" and self.fake is not None:
            return self.fake.batch_size
        if self.engine == "vllm" and self.vllm is not None and self.vllm.engine.max_num_seqs:
            return self.vllm.engine.max_num_seqs
        if self.engine == "tensorrt" and self.tensorrt is not None and self.tensorrt.max_batch_size:
            return self.tensorrt.max_batch_size
        return 1
