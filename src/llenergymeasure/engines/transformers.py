"""The Hugging Face transformers engine (CPU and CUDA), with static batching.

torch and transformers are imported inside methods only: importing this module
costs nothing, and ``llem --help`` never pulls them in.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llenergymeasure.config.engines import TransformersConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.engines.base import (
    BatchTiming,
    GenerationOutput,
    ModelInfo,
    PreparedPrompts,
    ProgressCallback,
    RequestOutput,
)
from llenergymeasure.engines.model_files import (
    dist_version,
    hf_folder,
    model_shape,
    quiet_transformers,
    stop_ids,
)
from llenergymeasure.engines.resolve import ResolvedModel
from llenergymeasure.engines.text import TokenizerText
from llenergymeasure.engines.timing import (
    STATIC_BATCH_TIMING,
    EventStepClock,
    HostStepClock,
    StepClock,
    StepMarker,
    requests_from_steps,
)
from llenergymeasure.errors import EngineError
from llenergymeasure.records.base import Availability

__all__ = ["TransformersEngine", "TransformersLoadedModel"]

_MIB = 2**20
_REQUIRED = ("torch", "transformers")


class TransformersEngine:
    """Hugging Face transformers ``generate`` with left-padded static batches."""

    name = "transformers"

    def probe(self) -> Availability:
        missing = [m for m in _REQUIRED if importlib.util.find_spec(m) is None]
        if missing:
            return Availability(
                False,
                f"{' and '.join(missing)} not installed: "
                "pip install 'llenergymeasure[transformers]'",
            )
        return Availability(True, "torch and transformers importable", dist_version("transformers"))

    def devices(self, config: ExperimentConfig) -> list[str]:
        section = config.transformers or TransformersConfig()
        if section.device_map and section.device_map.startswith("cuda"):
            return [section.device_map]
        if section.device_map == "cpu":
            return ["cpu"]
        if _cuda_available():
            return ["cuda:0"]
        return ["cpu"]

    def preflight(self, config: ExperimentConfig, model: ResolvedModel) -> list[str]:
        problems = []
        section = config.transformers or TransformersConfig()
        on_gpu = any(d.startswith("cuda") for d in self.devices(config))
        if (section.load_in_4bit or section.load_in_8bit) and not on_gpu:
            problems.append("bitsandbytes 4/8-bit loading needs a CUDA GPU; none is available")
        if (section.load_in_4bit or section.load_in_8bit) and importlib.util.find_spec(
            "bitsandbytes"
        ) is None:
            problems.append("bitsandbytes is not installed (needed for load_in_4bit/load_in_8bit)")
        if section.attn_implementation == "flash_attention_2" and (
            not on_gpu or importlib.util.find_spec("flash_attn") is None
        ):
            problems.append("flash_attention_2 needs a CUDA GPU and the flash-attn package")
        if model.is_gguf and importlib.util.find_spec("gguf") is None:
            problems.append("loading a .gguf model needs the `gguf` package: pip install gguf")
        return problems

    def load(self, config: ExperimentConfig, model: ResolvedModel) -> TransformersLoadedModel:
        try:
            return TransformersLoadedModel.load(config, model, self.devices(config)[0])
        except EngineError:
            raise
        except (OSError, ValueError, RuntimeError, ImportError, KeyError) as err:
            raise EngineError(
                f"transformers could not load `{model.name}`: {type(err).__name__}: {err}"
            ) from err


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


@dataclass
class _Batch:
    indices: list[int]
    input_ids: Any  # torch.LongTensor, left-padded
    attention_mask: Any
    n_input_tokens: list[int]


class TransformersLoadedModel(TokenizerText):
    """A transformers model and tokenizer held in memory."""

    def __init__(
        self,
        config: ExperimentConfig,
        model: Any,
        tokenizer: Any,
        info: ModelInfo,
        generate_kwargs: dict[str, Any],
    ) -> None:
        super().__init__(config, tokenizer)
        self._section = config.transformers or TransformersConfig()
        self._model = model
        self._device = info.device
        self.info = info
        self._generate_kwargs = generate_kwargs

    @classmethod
    def load(
        cls, config: ExperimentConfig, resolved: ResolvedModel, device: str
    ) -> TransformersLoadedModel:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_transformers()
        section = config.transformers or TransformersConfig()
        folder, notes = hf_folder(resolved)
        on_gpu = device.startswith("cuda")
        kwargs: dict[str, Any] = {
            "local_files_only": True,
            "trust_remote_code": config.task.trust_remote_code,
            "dtype": getattr(torch, section.dtype)
            if section.dtype
            else ("auto" if on_gpu else torch.float32),
        }
        if section.attn_implementation:
            kwargs["attn_implementation"] = section.attn_implementation
        if section.load_in_4bit or section.load_in_8bit:
            kwargs["quantization_config"] = _bnb_config(section)
        kwargs["device_map"] = section.device_map or device
        torch.manual_seed(config.task.random_seed)
        model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
        model.eval()
        if section.torch_compile:
            model.forward = torch.compile(
                model.forward,
                mode=section.torch_compile_mode,
                backend=section.torch_compile_backend or "inductor",
            )
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=config.task.trust_remote_code
        )
        tokenizer.padding_side = "left"  # decoder-only: new tokens follow the real prompt end
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        generate_kwargs = _generation_kwargs(config, tokenizer)
        info = _model_info(model, kwargs, generate_kwargs, notes)
        return cls(config, model, tokenizer, info, generate_kwargs)

    def prepare(self, prompts: Sequence[str]) -> PreparedPrompts:
        import torch

        ids = self._prompt_ids(prompts)
        pad = int(self._tokenizer.pad_token_id)
        batches = []
        size = self._section.batch_size
        for start in range(0, len(ids), size):
            rows = ids[start : start + size]
            width = max(len(r) for r in rows)
            input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
            mask = torch.tensor(
                [[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long
            )
            batches.append(
                _Batch(
                    indices=list(range(start, start + len(rows))),
                    input_ids=input_ids.to(self._device),
                    attention_mask=mask.to(self._device),
                    n_input_tokens=[len(r) for r in rows],
                )
            )
        return PreparedPrompts(n_input_tokens=tuple(len(r) for r in ids), payload=batches)

    def generate(
        self, prepared: PreparedPrompts, *, on_progress: ProgressCallback | None = None
    ) -> GenerationOutput:
        import torch
        from transformers import StoppingCriteriaList

        # Reseed per call so the window's sampling does not depend on the warm-up count.
        torch.manual_seed(self._config.task.random_seed)
        eos = set(stop_ids(self._model.generation_config.eos_token_id, self._tokenizer))
        clock = self._step_clock()
        records: list[RequestOutput] = []
        timings: list[BatchTiming] = []
        n_output_tokens = 0
        for batch in prepared.payload:
            marker = StoppingCriteriaList([StepMarker(clock)])
            clock.start()
            try:
                with torch.inference_mode():
                    out = self._model.generate(
                        input_ids=batch.input_ids,
                        attention_mask=batch.attention_mask,
                        stopping_criteria=marker,
                        **self._generate_kwargs,
                    )
            except (RuntimeError, ValueError) as err:
                raise EngineError(
                    f"transformers generate failed: {type(err).__name__}: {err}"
                ) from err
            timing = clock.resolve(batch.indices)
            new = out[:, batch.input_ids.shape[1] :].tolist()
            counted = [_real_tokens(row, eos) for row in new]
            records.extend(
                requests_from_steps(
                    batch_start_s=timing.start_s,
                    step_times_s=timing.step_end_s,
                    indices=batch.indices,
                    n_input_tokens=batch.n_input_tokens,
                    n_output_tokens=[len(c) for c in counted],
                    token_ids=[tuple(c) for c in counted],
                )
            )
            timings.append(timing)
            n_output_tokens += sum(len(c) for c in counted)
            if on_progress is not None:
                on_progress(len(records), n_output_tokens)
        return GenerationOutput(
            requests=tuple(records), timing_definition=STATIC_BATCH_TIMING, batches=tuple(timings)
        )

    def _step_clock(self) -> StepClock:
        """CUDA events on the model's stream on a GPU (no wait per step); the host clock else."""
        if not self._device.startswith("cuda"):
            return HostStepClock()
        import torch

        stream = torch.cuda.current_stream(torch.device(self._device))
        return EventStepClock(lambda: torch.cuda.Event(enable_timing=True), stream=stream)

    def synchronize(self) -> None:
        if self._device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def reset_peak_memory(self) -> None:
        if self._device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()

    def peak_device_memory_mib(self) -> float | None:
        if not self._device.startswith("cuda"):
            return None
        import torch

        return float(torch.cuda.max_memory_allocated()) / _MIB

    def close(self) -> None:
        self._model = None
        if self._device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def _generation_kwargs(config: ExperimentConfig, tokenizer: Any) -> dict[str, Any]:
    """Arguments for every ``generate`` call; None fields keep the model's defaults."""
    task, section = config.task, config.transformers or TransformersConfig()
    kwargs: dict[str, Any] = {"max_new_tokens": task.max_output_tokens}
    if task.dataset.output_len is not None:
        # Synthetic workloads generate exactly output_len tokens.
        kwargs["max_new_tokens"] = kwargs["min_new_tokens"] = task.dataset.output_len
    sampling = section.sampling.model_dump(exclude_none=True)
    min_new_tokens = sampling.pop("min_new_tokens", None)
    if min_new_tokens is not None and "min_new_tokens" not in kwargs:
        kwargs["min_new_tokens"] = min_new_tokens
    kwargs.update(sampling)
    for name in ("num_beams", "use_cache", "cache_implementation"):
        value = getattr(section, name)
        if value is not None:
            kwargs[name] = value
    kwargs["pad_token_id"] = tokenizer.pad_token_id
    return kwargs


def _real_tokens(row: list[int], eos: set[int]) -> list[int]:
    """Generated tokens up to and including the first EOS; what follows is padding."""
    for k, token in enumerate(row):
        if token in eos:
            return row[: k + 1]
    return row


def _count_params(model: Any) -> tuple[int, int]:
    """All parameters, and those outside the input (and position) embeddings."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings()
    excluded = sum(p.numel() for p in embedding.parameters()) if embedding is not None else 0
    return int(total), int(total - excluded)


def _model_info(
    model: Any, kwargs: dict[str, Any], generate_kwargs: dict[str, Any], notes: list[str]
) -> ModelInfo:
    """What was loaded, with which arguments, its shape and the devices it is on."""
    n_params, n_non_embedding = _count_params(model)
    shown = {k: str(v) for k, v in kwargs.items() if k != "quantization_config"}
    if "quantization_config" in kwargs:
        shown["quantization_config"] = str(kwargs["quantization_config"].to_dict())
    return ModelInfo(
        n_params=n_params,
        n_non_embedding_params=n_non_embedding,
        dtype=str(model.dtype).removeprefix("torch."),
        device=str(model.device),
        engine_version=dist_version("transformers"),
        engine_args={
            "from_pretrained": shown,
            "generate": {k: str(v) for k, v in generate_kwargs.items()},
            "torch_version": dist_version("torch"),
        },
        model_memory_mib=float(model.get_memory_footprint()) / _MIB,
        notes=tuple(notes),
        shape=model_shape(model.config.to_dict(), (n for n, _ in model.named_parameters())),
        device_names=_device_names(model),
    )


def _device_names(model: Any) -> tuple[str, ...]:
    """The CUDA devices holding the model's weights, by name; empty on the CPU."""
    import torch

    placed = getattr(model, "hf_device_map", None) or {"": model.device}
    devices = sorted(
        {torch.device(d) for d in placed.values() if str(d) not in ("cpu", "disk")},
        key=lambda d: d.index or 0,
    )  # a bare index in a device map means that CUDA device
    return tuple(torch.cuda.get_device_name(d) for d in devices if d.type == "cuda")


def _bnb_config(section: TransformersConfig) -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    if section.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    options: dict[str, Any] = {"load_in_4bit": True}
    if section.bnb_4bit_compute_dtype:
        options["bnb_4bit_compute_dtype"] = getattr(torch, section.bnb_4bit_compute_dtype)
    if section.bnb_4bit_quant_type:
        options["bnb_4bit_quant_type"] = section.bnb_4bit_quant_type
    if section.bnb_4bit_use_double_quant is not None:
        options["bnb_4bit_use_double_quant"] = section.bnb_4bit_use_double_quant
    return BitsAndBytesConfig(**options)
