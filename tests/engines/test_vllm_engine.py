"""The vLLM engine against a fake ``vllm`` module put in ``sys.modules`` (the vendor seam).

The fake builds its own engine config from the arguments it gets (with defaults of its
own for what it was not given), answers ``generate`` with scripted token ids and, when
asked, vLLM-style request metrics. Tests that load a model use the real bundled model's
tokenizer, so chat template and truncation are the real ones.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config.engines import VLLMEngineArgs, VLLMSamplingConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.engines.registry import get_engine
from llenergymeasure.engines.resolve import resolve_model
from llenergymeasure.engines.text import input_ids_for
from llenergymeasure.engines.vllm import (
    CALL_TIMING,
    CPU_KV_CACHE_GIB,
    METRICS_TIMING,
    VLLMEngine,
    VLLMLoadedModel,
    engine_kwargs,
    request_from_output,
    sampling_kwargs,
)
from llenergymeasure.errors import EngineError
from llenergymeasure.testing.simulated_nvml import SimulatedGpu, SimulatedNvml

NO_GPU = SimulatedNvml([])

# A value for every field of the `vllm:` section, none of them vLLM's default.
ENGINE_VALUES: dict[str, Any] = {
    "gpu_memory_utilization": 0.5,
    "max_num_seqs": 3,
    "max_num_batched_tokens": 1024,
    "max_model_len": 640,
    "block_size": 32,
    "kv_cache_dtype": "fp8",
    "enforce_eager": True,
    "enable_chunked_prefill": True,
    "enable_prefix_caching": False,
    "tensor_parallel_size": 1,
    "pipeline_parallel_size": 1,
    "quantization": "fp8",
    "speculative_config": {"method": "ngram", "num_speculative_tokens": 2},
}
SAMPLING_VALUES: dict[str, Any] = {
    "temperature": 0.6,
    "top_k": 7,
    "top_p": 0.8,
    "min_p": 0.05,
    "repetition_penalty": 1.1,
    "presence_penalty": 0.2,
    "frequency_penalty": 0.3,
    "min_tokens": 2,
    "n": 2,
    "ignore_eos": True,
}


def _config(**vllm: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "engine": "vllm",
            "task": {"max_input_tokens": 48, "max_output_tokens": 6, "random_seed": 7},
            "vllm": vllm,
        }
    )


def test_the_section_covers_the_fields_these_tests_set() -> None:
    assert set(ENGINE_VALUES) == set(VLLMEngineArgs.model_fields)
    assert set(SAMPLING_VALUES) == set(VLLMSamplingConfig.model_fields)


def test_every_engine_field_reaches_llm(tmp_path: Path) -> None:
    config = _config(dtype="float16", engine=ENGINE_VALUES)
    kwargs = engine_kwargs(config, tmp_path, on_cpu=True)
    for name, value in ENGINE_VALUES.items():
        assert kwargs[name] == value, name
    assert kwargs["dtype"] == "float16"
    assert kwargs["model"] == kwargs["tokenizer"] == str(tmp_path)
    assert kwargs["seed"] == 7
    assert kwargs["trust_remote_code"] is False
    assert kwargs["disable_log_stats"] is False  # per-request metrics need stats
    # The user sized the memory: no KV-cache default of ours.
    assert "kv_cache_memory_bytes" not in kwargs


def test_unset_fields_keep_vllms_defaults_but_the_cpu_kv_cache_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    on_cpu = engine_kwargs(_config(), tmp_path, on_cpu=True)
    assert set(on_cpu) == {
        "model",
        "tokenizer",
        "seed",
        "trust_remote_code",
        "disable_log_stats",
        "kv_cache_memory_bytes",
    }
    assert on_cpu["kv_cache_memory_bytes"] == CPU_KV_CACHE_GIB * 2**30
    assert "kv_cache_memory_bytes" not in engine_kwargs(_config(), tmp_path, on_cpu=False)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    assert "kv_cache_memory_bytes" not in engine_kwargs(_config(), tmp_path, on_cpu=True)


def test_every_sampling_field_reaches_sampling_params() -> None:
    kwargs = sampling_kwargs(
        _config(sampling=SAMPLING_VALUES),
        model_defaults={"temperature": 0.9, "top_p": 0.7, "repetition_penalty": 1.05},
        stop_token_ids=[5, 2, 5],
    )
    for name, value in SAMPLING_VALUES.items():
        assert kwargs[name] == value, name  # explicit values beat the model's defaults
    assert kwargs["max_tokens"] == 6  # task.max_output_tokens
    # the engine seed (LLM(seed=7)) only: a per-request seed leaves vLLM's fast sampler
    assert "seed" not in kwargs
    assert kwargs["stop_token_ids"] == [2, 5]
    assert kwargs["detokenize"] is False
    kept = sampling_kwargs(_config(), model_defaults={"temperature": 0.9})
    assert kept["temperature"] == 0.9  # unset: the model's generation config, as vLLM does
    assert "stop_token_ids" not in kept


def test_presets_and_synthetic_lengths_become_sampling_params() -> None:
    greedy = ExperimentConfig.model_validate({"engine": "vllm", "sampling_preset": "deterministic"})
    assert sampling_kwargs(greedy)["temperature"] == 0.0
    synthetic = ExperimentConfig.model_validate(
        {
            "engine": "vllm",
            "task": {
                "max_output_tokens": 64,
                "dataset": {"source": "synthetic", "input_len": 8, "output_len": 12},
            },
        }
    )
    kwargs = sampling_kwargs(synthetic)
    assert kwargs["max_tokens"] == kwargs["min_tokens"] == 12


@dataclass
class _Completion:
    token_ids: list[int]


@dataclass
class _Output:
    outputs: list[_Completion]
    metrics: Any = None


def test_a_request_record_from_vllm_metrics_counts_every_completion() -> None:
    metrics = types.SimpleNamespace(
        first_token_ts=100.0, last_token_ts=100.5, first_token_latency=0.2
    )
    output = _Output([_Completion([1, 2, 3, 4, 5, 6]), _Completion([7, 8, 2])], metrics)
    record = request_from_output(output, index=3, n_input_tokens=11)
    assert record is not None
    assert record.index == 3 and record.n_input_tokens == 11
    assert record.n_output_tokens == 9  # n = 2: both completions count
    assert record.token_ids == (1, 2, 3, 4, 5, 6)  # the first completion's
    assert record.ttft_ms == pytest.approx(200.0)
    assert record.latency_ms == pytest.approx(700.0)
    assert record.itl_ms == pytest.approx(500.0 / 5)
    assert request_from_output(_Output([_Completion([1])]), index=0, n_input_tokens=1) is None
    unset = types.SimpleNamespace(first_token_ts=0.0, last_token_ts=0.0, first_token_latency=0.0)
    no_times = _Output([_Completion([1])], unset)
    assert request_from_output(no_times, index=0, n_input_tokens=1) is None


def test_devices_follow_tensor_times_pipeline_parallel(tmp_path: Path) -> None:
    no_driver = VLLMEngine(nvml=NO_GPU, environ={})
    assert no_driver.devices(_config(engine={"tensor_parallel_size": 2})) == ["cpu"]
    nvml = SimulatedNvml([SimulatedGpu("NVIDIA H200", f"GPU-{k}") for k in range(3)])
    engine = VLLMEngine(nvml=nvml, environ={})
    config = _config(engine={"tensor_parallel_size": 2, "pipeline_parallel_size": 2})
    assert engine.devices(config) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert engine.devices(_config()) == ["cuda:0"]
    model = resolve_model_or_folder(tmp_path)
    problems = engine.preflight(config, model)
    assert any("4 GPUs, but 3 are visible" in p for p in problems)
    # CUDA_VISIBLE_DEVICES narrows what the run can use
    hidden = VLLMEngine(nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": "2"})
    two = _config(engine={"tensor_parallel_size": 2})
    assert any("2 GPUs, but 1 are visible" in p for p in hidden.preflight(two, model))
    assert VLLMEngine(nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": ""}).devices(two) == ["cpu"]


def resolve_model_or_folder(tmp_path: Path) -> Any:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    return resolve_model(str(folder))


def test_preflight_refuses_a_context_too_short_for_the_task(tmp_path: Path) -> None:
    engine = VLLMEngine(nvml=NO_GPU, environ={})
    model = resolve_model_or_folder(tmp_path)
    short = _config(engine={"max_model_len": 50})  # 48 in + 6 out do not fit
    assert any("max_model_len (50)" in p for p in engine.preflight(short, model))
    assert engine.preflight(_config(engine={"max_model_len": 54}), model) == []


def test_without_vllm_the_engine_says_how_to_get_it() -> None:
    engine = get_engine("vllm")
    assert isinstance(engine, VLLMEngine)
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed in this environment")
    availability = engine.probe()
    assert not availability.available
    assert "make vllm-env" in availability.reason and ".venv-vllm" in availability.reason
    with pytest.raises(EngineError, match="vllm is not installed"):
        engine.load(_config(), resolve_model("smollm2-135m"))


# ------------------------------------------------------------- with the fake module


@dataclass
class FakeVLLM:
    """What the fake module saw, and how it answers."""

    with_metrics: bool = True
    llm_kwargs: dict[str, Any] = field(default_factory=dict)
    sampling_kwargs: dict[str, Any] = field(default_factory=dict)
    prompts: list[Any] = field(default_factory=list)
    fail_with: Exception | None = None
    shutdowns: int = 0
    device_type: str = "cpu"  # what vLLM's own device config says


def _module(state: FakeVLLM) -> types.ModuleType:
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            state.sampling_kwargs = kwargs
            self.n = kwargs.get("n", 1)
            self.max_tokens = kwargs["max_tokens"]

    class _Core:
        def shutdown(self) -> None:
            state.shutdowns += 1

    class LLM:
        def __init__(self, **kwargs: Any) -> None:
            state.llm_kwargs = kwargs
            ns = types.SimpleNamespace
            # The config vLLM builds: what it was given, or defaults of its own.
            given_dtype = kwargs.get("dtype", "auto")
            model_config = ns(
                dtype="torch.bfloat16" if given_dtype == "auto" else given_dtype,
                max_model_len=kwargs.get("max_model_len", 8192),
                quantization=kwargs.get("quantization"),
                enforce_eager=kwargs.get("enforce_eager", False),
                seed=kwargs["seed"],
                get_diff_sampling_param=lambda: {"top_p": 0.95},
            )
            self.llm_engine = ns(
                vllm_config=ns(
                    model_config=model_config,
                    cache_config=ns(
                        num_gpu_blocks=2048,
                        block_size=kwargs.get("block_size", 128),
                        cache_dtype=kwargs.get("kv_cache_dtype", "auto"),
                        enable_prefix_caching=kwargs.get("enable_prefix_caching", True),
                        gpu_memory_utilization=kwargs.get("gpu_memory_utilization", 0.92),
                        kv_cache_memory_bytes=kwargs.get("kv_cache_memory_bytes"),
                    ),
                    scheduler_config=ns(
                        max_num_seqs=kwargs.get("max_num_seqs", 256),
                        max_num_batched_tokens=kwargs.get("max_num_batched_tokens", 4096),
                        enable_chunked_prefill=kwargs.get("enable_chunked_prefill", True),
                    ),
                    parallel_config=ns(
                        tensor_parallel_size=kwargs.get("tensor_parallel_size", 1),
                        pipeline_parallel_size=kwargs.get("pipeline_parallel_size", 1),
                        world_size=kwargs.get("tensor_parallel_size", 1)
                        * kwargs.get("pipeline_parallel_size", 1),
                        distributed_executor_backend="mp",
                    ),
                    device_config=ns(device_type=state.device_type),
                    compilation_config=ns(
                        mode="CompilationMode.VLLM_COMPILE",
                        cudagraph_mode="CUDAGraphMode.FULL_AND_PIECEWISE",
                        cudagraph_capture_sizes=[1, 2, 4, 8],
                    ),
                    speculative_config=None,
                ),
                engine_core=_Core(),
            )

        def generate(self, prompts: list[Any], params: Any, *, use_tqdm: bool) -> list[Any]:
            assert use_tqdm is False
            if state.fail_with is not None:
                raise state.fail_with
            state.prompts = list(prompts)
            outputs = []
            for k, prompt in enumerate(prompts):
                n_tokens = min(params.max_tokens, 2 + k)  # request k stops after 2 + k tokens
                completions = [
                    _Completion([100 + j for j in range(n_tokens)]) for _ in range(params.n)
                ]
                metrics = (
                    types.SimpleNamespace(
                        first_token_ts=50.0 + k,
                        last_token_ts=50.0 + k + 0.01 * (n_tokens - 1),
                        first_token_latency=0.1 * (k + 1),
                    )
                    if state.with_metrics
                    else None
                )
                assert "prompt_token_ids" in prompt  # our ids, never text
                outputs.append(_Output(completions, metrics))
            return outputs

    module.LLM = LLM  # type: ignore[attr-defined]
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    return module


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVLLM]:
    state = FakeVLLM()
    monkeypatch.setitem(sys.modules, "vllm", _module(state))
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    yield state


def _load(
    config: ExperimentConfig, nvml: SimulatedNvml = NO_GPU, environ: dict[str, str] | None = None
) -> VLLMLoadedModel:
    engine = VLLMEngine(nvml=nvml, environ=environ or {})
    assert engine.probe().available  # the fake is importable
    return engine.load(config, resolve_model("smollm2-135m"))


@pytest.mark.model
def test_load_records_given_and_effective_engine_args(fake_vllm: FakeVLLM) -> None:
    model = _load(_config(engine={"max_num_seqs": 3}))
    assert fake_vllm.llm_kwargs["max_num_seqs"] == 3
    assert Path(fake_vllm.llm_kwargs["model"]).is_dir()  # the safetensors folder, not the GGUF
    args = model.info.engine_args
    assert args["LLM"]["max_num_seqs"] == "3"
    effective = args["effective"]
    assert effective["max_num_seqs"] == "3"
    # Not given, so read back from the config the engine built.
    assert effective["max_num_batched_tokens"] == "4096"
    assert effective["block_size"] == "128"
    assert effective["kv_cache_memory_bytes"] == str(CPU_KV_CACHE_GIB * 2**30)
    assert model.info.dtype == "bfloat16"
    assert model.info.device == "cpu"
    assert model.info.n_params is not None and 100e6 < model.info.n_params < 200e6
    assert model.info.n_non_embedding_params is not None
    assert model.info.n_non_embedding_params < model.info.n_params
    assert model.info.model_memory_mib is not None and model.info.model_memory_mib > 100
    assert any("dequantised" in note for note in model.info.notes)
    # The stop token the transformers engine stops at, and the model's sampling default.
    assert fake_vllm.sampling_kwargs["stop_token_ids"] == [2]
    assert fake_vllm.sampling_kwargs["top_p"] == 0.95
    assert args["model_sampling_defaults"] == {"top_p": "0.95"}
    model.close()
    assert fake_vllm.shutdowns == 1


@pytest.mark.model
def test_prompts_are_templated_and_truncated_exactly_as_for_transformers(
    fake_vllm: FakeVLLM,
) -> None:
    from transformers import AutoTokenizer

    model = _load(_config())
    long_prompt = "Describe the history of the printing press in detail. " * 40
    prepared = model.prepare([long_prompt, "Hi"])
    assert prepared.n_input_tokens[0] == 48  # task.max_input_tokens
    assert prepared.n_input_tokens[1] < 48
    assert model.decode(list(prepared.payload.ids[0])).rstrip().endswith("assistant")
    folder = fake_vllm.llm_kwargs["tokenizer"]
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    for text, ids in zip([long_prompt, "Hi"], prepared.payload.ids, strict=True):
        expected = input_ids_for(tokenizer, text, max_input_tokens=48, use_chat_template=True)
        assert list(ids) == expected
    model.generate(prepared)
    assert [p["prompt_token_ids"] for p in fake_vllm.prompts] == [
        list(i) for i in prepared.payload.ids
    ]


@pytest.mark.model
def test_generate_uses_request_metrics_when_vllm_gives_them(fake_vllm: FakeVLLM) -> None:
    model = _load(_config(sampling={"n": 2}))
    prepared = model.prepare(["a", "b", "c"])
    seen: list[tuple[int, int | None]] = []
    out = model.generate(prepared, on_progress=lambda done, n=None: seen.append((done, n)))
    assert out.timing_definition == METRICS_TIMING
    assert [r.n_output_tokens for r in out.requests] == [4, 6, 8]  # 2 + k tokens, n = 2
    assert [len(r.token_ids) for r in out.requests] == [2, 3, 4]
    assert [r.ttft_ms for r in out.requests] == pytest.approx([100.0, 200.0, 300.0])
    assert out.requests[2].itl_ms == pytest.approx(10.0)
    assert out.requests[2].latency_ms == pytest.approx(300.0 + 30.0)
    assert seen == [(3, 18)]


@pytest.mark.model
def test_without_metrics_only_the_whole_call_is_timed(fake_vllm: FakeVLLM) -> None:
    fake_vllm.with_metrics = False
    model = _load(_config())
    out = model.generate(model.prepare(["a", "b"]))
    assert out.timing_definition == CALL_TIMING
    assert all(r.ttft_ms is None and r.itl_ms is None for r in out.requests)
    assert len({r.latency_ms for r in out.requests}) == 1  # one call, one figure
    assert [r.n_output_tokens for r in out.requests] == [2, 3]


@pytest.mark.model
def test_a_vllm_failure_is_an_engine_error(fake_vllm: FakeVLLM) -> None:
    model = _load(_config())
    fake_vllm.fail_with = RuntimeError("KV cache exhausted")
    with pytest.raises(EngineError, match="KV cache exhausted"):
        model.generate(model.prepare(["a"]))


@pytest.mark.model
def test_on_cuda_placement_comes_from_nvml_and_vllms_own_config(fake_vllm: FakeVLLM) -> None:
    fake_vllm.device_type = "cuda"
    nvml = SimulatedNvml([SimulatedGpu("NVIDIA H200", f"GPU-{k}") for k in range(3)])
    model = _load(
        _config(engine={"tensor_parallel_size": 2}), nvml, {"CUDA_VISIBLE_DEVICES": "2,1"}
    )
    info = model.info
    assert info.device == "cuda:0,cuda:1"
    assert info.device_names == ("NVIDIA H200", "NVIDIA H200")
    placement = info.engine_args["placement"]
    assert placement["nvml_indices"] == [2, 1] and placement["mig"] is None
    effective = info.engine_args["effective"]
    # captured while the LLM was built, outside the window; and what memory was left for KV
    assert effective["cudagraph_capture_sizes"] == "[1, 2, 4, 8]"
    assert effective["num_gpu_blocks"] == "2048"
    assert effective["gpu_memory_utilization"] == "0.92"
    assert info.engine_args["llm_init_s"] >= 0
    # the engine seed, and no per-request seed to push vLLM off its fast sampler
    assert fake_vllm.llm_kwargs["seed"] == 7 and "seed" not in fake_vllm.sampling_kwargs
    assert "kv_cache_memory_bytes" not in fake_vllm.llm_kwargs  # GPU memory: vLLM's own sizing
    assert info.shape is not None and info.shape.n_layers == 30  # FLOPs from the config


@pytest.mark.model
def test_a_mig_slice_is_measured_as_the_whole_gpu_and_says_so(fake_vllm: FakeVLLM) -> None:
    fake_vllm.device_type = "cuda"
    nvml = SimulatedNvml([SimulatedGpu("NVIDIA A100-SXM4-40GB", "GPU-a", mig_mode=True)])
    model = _load(_config(), nvml, {"CUDA_VISIBLE_DEVICES": "MIG-0f1e2d"})
    assert model.info.device_names == ("NVIDIA A100-SXM4-40GB MIG slice",)
    note = model.info.engine_args["placement"]["mig"]
    assert "measured as the whole GPU" in note and "gpu:0" in note
    assert note in model.info.notes
