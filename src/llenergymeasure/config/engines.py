"""The engine sections of an experiment config: ``transformers:``, ``vllm:``, ``tensorrt:``
and the test double's ``fake:``. Every field ``None`` means "the engine's default"; the
cross-field rules are validators with clear messages."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from llenergymeasure.config.base import StrictModel

__all__ = [
    "FakeConfig",
    "TensorRTConfig",
    "TransformersConfig",
    "TransformersSamplingConfig",
    "VLLMConfig",
]


TorchDtype = Literal["float32", "float16", "bfloat16"]


class TransformersSamplingConfig(StrictModel):
    """Decoding settings passed to ``generate``; None = the engine's default."""

    temperature: float | None = Field(None, ge=0.0, le=100.0, allow_inf_nan=False)
    do_sample: bool | None = None
    top_k: int | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    repetition_penalty: float | None = Field(None, gt=0.0, le=100.0, allow_inf_nan=False)
    min_p: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    min_new_tokens: int | None = Field(None, ge=0)


class TransformersConfig(StrictModel):
    """The `transformers:` section."""

    batch_size: int = Field(1, ge=1, le=65_536)
    dtype: TorchDtype | None = None
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2", "flex_attention"] | None = (
        None
    )
    torch_compile: bool | None = None
    torch_compile_mode: (
        Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] | None
    ) = None
    torch_compile_backend: str | None = None
    load_in_4bit: bool | None = None
    load_in_8bit: bool | None = None
    bnb_4bit_compute_dtype: TorchDtype | None = None
    bnb_4bit_quant_type: Literal["nf4", "fp4"] | None = None
    bnb_4bit_use_double_quant: bool | None = None
    use_cache: bool | None = None
    cache_implementation: Literal["dynamic", "static", "offloaded", "offloaded_static"] | None = (
        None
    )
    num_beams: int | None = Field(None, ge=1, le=64)
    device_map: str | None = None
    sampling: TransformersSamplingConfig = TransformersSamplingConfig()

    @model_validator(mode="after")
    def _cross_field(self) -> TransformersConfig:
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("`load_in_4bit` and `load_in_8bit` cannot both be true")
        bnb4 = (
            self.bnb_4bit_compute_dtype,
            self.bnb_4bit_quant_type,
            self.bnb_4bit_use_double_quant,
        )
        if any(v is not None for v in bnb4) and not self.load_in_4bit:
            raise ValueError("`bnb_4bit_*` options need `load_in_4bit: true`")
        if self.attn_implementation == "flash_attention_2" and self.dtype == "float32":
            raise ValueError("flash_attention_2 needs float16 or bfloat16, not float32")
        if (self.torch_compile_mode or self.torch_compile_backend) and not self.torch_compile:
            raise ValueError(
                "`torch_compile_mode`/`torch_compile_backend` need `torch_compile: true`"
            )
        return self


class VLLMEngineArgs(StrictModel):
    """Engine arguments of the `vllm:` section."""

    gpu_memory_utilization: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    max_num_seqs: int | None = Field(None, ge=1)
    max_num_batched_tokens: int | None = Field(None, ge=1)
    max_model_len: int | None = Field(None, ge=1)
    block_size: Literal[8, 16, 32, 64, 128] | None = None
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"] | None = None
    enforce_eager: bool | None = None
    enable_chunked_prefill: bool | None = None
    enable_prefix_caching: bool | None = None
    tensor_parallel_size: int | None = Field(None, ge=1)
    pipeline_parallel_size: int | None = Field(None, ge=1)
    quantization: str | None = None
    speculative_config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _batched_tokens(self) -> VLLMEngineArgs:
        mbt, mml = self.max_num_batched_tokens, self.max_model_len
        if mbt is not None and mml is not None and mbt < mml and not self.enable_chunked_prefill:
            raise ValueError(
                f"`max_num_batched_tokens` ({mbt}) < `max_model_len` ({mml}) needs "
                "`enable_chunked_prefill: true`"
            )
        return self


class VLLMSamplingConfig(StrictModel):
    """Sampling parameters of the `vllm:` section."""

    temperature: float | None = Field(None, ge=0.0, le=100.0, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=-1)
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    min_p: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    repetition_penalty: float | None = Field(None, gt=0.0, le=100.0, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    min_tokens: int | None = Field(None, ge=0)
    n: int | None = Field(None, ge=1, le=64)
    ignore_eos: bool | None = None


class VLLMConfig(StrictModel):
    """The `vllm:` section."""

    dtype: Literal["auto", "float32", "float16", "bfloat16"] | None = None
    engine: VLLMEngineArgs = VLLMEngineArgs()
    sampling: VLLMSamplingConfig = VLLMSamplingConfig()


class TensorRTQuantConfig(StrictModel):
    quant_algo: Literal["FP8", "INT8", "W4A16_AWQ", "W8A16", "W4A16", "NVFP4"] | None = None
    kv_cache_quant_algo: Literal["FP8", "INT8"] | None = None


class TensorRTKVCacheConfig(StrictModel):
    free_gpu_memory_fraction: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    enable_block_reuse: bool | None = None


class TensorRTSamplingConfig(StrictModel):
    temperature: float | None = Field(None, ge=0.0, le=100.0, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    repetition_penalty: float | None = Field(None, gt=0.0, le=100.0, allow_inf_nan=False)
    min_tokens: int | None = Field(None, ge=0)


class TensorRTConfig(StrictModel):
    """The `tensorrt:` section."""

    max_batch_size: int | None = Field(None, ge=1)
    tensor_parallel_size: int | None = Field(None, ge=1)
    dtype: Literal["auto", "float16", "bfloat16"] | None = None
    quant_config: TensorRTQuantConfig = TensorRTQuantConfig()
    kv_cache_config: TensorRTKVCacheConfig = TensorRTKVCacheConfig()
    sampling: TensorRTSamplingConfig = TensorRTSamplingConfig()


class FakeConfig(StrictModel):
    """The `fake:` section: a deterministic engine for tests and demonstrations."""

    batch_size: int = Field(1, ge=1, le=65_536)
    token_latency_ms: float = Field(
        0.0, ge=0.0, le=60_000, allow_inf_nan=False, description="sleep per decode step"
    )
    prefill_latency_ms: float = Field(0.0, ge=0.0, le=60_000, allow_inf_nan=False)
    output_tokens: int | None = Field(
        None, ge=1, description="tokens per request; None = max_output_tokens"
    )
