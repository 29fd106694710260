"""The TensorRT-LLM engine against a fake ``tensorrt_llm`` at the import seam.

The fake records what the engine hands to ``LLM``, ``BuildConfig``, ``QuantConfig``,
``KvCacheConfig`` and ``SamplingParams``, writes an engine folder on ``save`` and
streams deterministic tokens. The tokenizer is a real Hugging Face tokenizer built
here, so chat templating, truncation and token counts run the real code.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llenergymeasure.config import ExperimentConfig
from llenergymeasure.config.loading import UserConfig
from llenergymeasure.engines.base import Engine, LoadedModel
from llenergymeasure.engines.registry import get_engine
from llenergymeasure.engines.resolve import resolve_model
from llenergymeasure.engines.tensorrt import (
    CONTINUOUS_BATCH_TIMING,
    TensorRTEngine,
    TensorRTLoadedModel,
)
from llenergymeasure.engines.tensorrt_build import ENGINE_COMPLETE_FILE, sampling_kwargs
from llenergymeasure.errors import EngineError, PreflightError
from llenergymeasure.experiment.options import Overrides
from llenergymeasure.experiment.preflight import run_preflight
from llenergymeasure.testing.simulated_nvml import SimulatedGpu, SimulatedNvml

WORDS = ["<unk>", "<pad>", "<eos>", "<end2>", "<|user|>", "<|assistant|>"] + [
    f"w{i}" for i in range(60)
]
EOS, END2, USER, ASSISTANT = 2, 3, 4, 5
VOCAB = len(WORDS)
HIDDEN = 4
ENGINE_BYTES = 1024 * 1024


# ------------------------------------------------------------------ a small model folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config.json, safetensors weights, a word-level tokenizer with a chat template."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-model")
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    fast.chat_template = (
        "{% for m in messages %}<|user|> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    fast.save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [EOS, END2]}))
    save_file(
        {
            "model.embed_tokens.weight": np.zeros((VOCAB, HIDDEN), dtype=np.float32),
            "model.layers.0.mlp.weight": np.zeros((HIDDEN, 3 * HIDDEN), dtype=np.float32),
            "model.norm.weight": np.zeros((HIDDEN,), dtype=np.float32),
        },
        str(folder / "model.safetensors"),
    )
    return folder


# ------------------------------------------------------------------ the fake tensorrt_llm


@dataclass
class Recorder:
    """What the engine did with the fake library."""

    created: list[dict[str, Any]] = field(default_factory=list)
    saved: list[Path] = field(default_factory=list)
    requests: list[tuple[list[int], Any]] = field(default_factory=list)
    shutdowns: int = 0
    llm_module: str = ""


class FakeBuildConfig:
    def __init__(self, max_input_len: int = 1024, max_seq_len: int | None = None, **kw: Any):
        self.max_input_len = max_input_len
        self.max_seq_len = max_seq_len
        self.max_batch_size = kw.pop("max_batch_size", 2048)  # the library's own default
        self.max_num_tokens = 8192
        assert not kw, kw


class FakeQuantAlgo:
    FP8 = "QuantAlgo.FP8"
    INT8 = "QuantAlgo.INT8"
    NVFP4 = "QuantAlgo.NVFP4"
    W4A16_AWQ = "QuantAlgo.W4A16_AWQ"
    W8A16 = "QuantAlgo.W8A16"
    W4A16 = "QuantAlgo.W4A16"


class FakeQuantConfig:
    def __init__(self, quant_algo: Any = None, kv_cache_quant_algo: Any = None) -> None:
        self.quant_algo = quant_algo
        self.kv_cache_quant_algo = kv_cache_quant_algo


class FakeKvCacheConfig:
    def __init__(
        self, free_gpu_memory_fraction: float | None = None, enable_block_reuse: bool = False
    ) -> None:
        self.free_gpu_memory_fraction = free_gpu_memory_fraction
        self.enable_block_reuse = enable_block_reuse


@dataclass(kw_only=True)
class NewSamplingParams:
    end_id: int | None = None
    pad_id: int | None = None
    max_tokens: int = 32
    stop_token_ids: list[int] | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    temperature: float | None = None
    min_tokens: int | None = None
    repetition_penalty: float | None = None


@dataclass(kw_only=True)
class OldSamplingParams:
    end_id: int | None = None
    pad_id: int | None = None
    max_tokens: int = 32
    stop_token_ids: list[int] | None = None
    top_k: int | None = None
    top_p: float | None = None
    random_seed: int | None = None
    temperature: float | None = None
    min_tokens: int | None = None
    repetition_penalty: float | None = None


@dataclass
class Completion:
    token_ids: list[int]
    finish_reason: str | None
    stop_reason: int | str | None


@dataclass
class Output:
    outputs: list[Completion]
    finished: bool


def fake_tokens(ids: list[int], params: Any) -> tuple[list[int], str, int | None]:
    """An even-length prompt "answers" 2 tokens then EOS (left out of the output, as
    TensorRT-LLM does); an odd-length one runs to max_tokens."""
    first = 6 + sum(ids) % 50
    if len(ids) % 2 == 0 and params.max_tokens > 2:
        return [first, first + 1], "stop", params.end_id
    return [6 + (first + k) % 60 for k in range(params.max_tokens)], "length", None


def make_llm(recorder: Recorder) -> type:
    class FakeLLM:
        def __init__(self, model: str, **kwargs: Any) -> None:
            recorder.created.append({"class": type(self).__name__, "model": model, **kwargs})
            self.kwargs = kwargs

        def save(self, engine_dir: str) -> None:
            path = Path(engine_dir)
            path.mkdir(parents=True)
            dtype = self.kwargs["dtype"]
            (path / "config.json").write_text(
                json.dumps(
                    {"pretrained_config": {"dtype": "float16" if dtype == "auto" else dtype}}
                )
            )
            (path / "rank0.engine").write_bytes(b"\0" * ENGINE_BYTES)
            recorder.saved.append(path)

        def generate_async(
            self, ids: list[int], params: Any, streaming: bool
        ) -> AsyncIterator[Output]:
            assert streaming
            recorder.requests.append((list(ids), params))
            return self._stream(list(ids), params)

        async def _stream(self, ids: list[int], params: Any) -> AsyncIterator[Output]:
            tokens, reason, stop = fake_tokens(ids, params)
            for n in range(1, len(tokens) + 1):
                done = n == len(tokens)
                yield Output(
                    [Completion(tokens[:n], reason if done else None, stop if done else None)],
                    done,
                )

        def shutdown(self) -> None:
            recorder.shutdowns += 1

    return FakeLLM


def install_fake(monkeypatch: pytest.MonkeyPatch, layout: str) -> Recorder:
    """``layout``: "current" (``_tensorrt_engine.LLM``, ``seed``) or "older" (``llmapi.LLM``,
    ``random_seed``)."""
    recorder = Recorder()
    root = types.ModuleType("tensorrt_llm")
    root.__version__ = "0.99.0" if layout == "current" else "0.12.0"  # type: ignore[attr-defined]
    llmapi = types.ModuleType("tensorrt_llm.llmapi")
    llm = make_llm(recorder)
    llmapi.BuildConfig = FakeBuildConfig  # type: ignore[attr-defined]
    llmapi.QuantAlgo = FakeQuantAlgo  # type: ignore[attr-defined]
    llmapi.QuantConfig = FakeQuantConfig  # type: ignore[attr-defined]
    llmapi.KvCacheConfig = FakeKvCacheConfig  # type: ignore[attr-defined]
    llmapi.SamplingParams = NewSamplingParams if layout == "current" else OldSamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt_llm", root)
    monkeypatch.setitem(sys.modules, "tensorrt_llm.llmapi", llmapi)
    if layout == "current":
        engine_module = types.ModuleType("tensorrt_llm._tensorrt_engine")

        class TensorRTEngineLLM(llm):  # type: ignore[misc, valid-type]
            pass

        engine_module.LLM = TensorRTEngineLLM  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "tensorrt_llm._tensorrt_engine", engine_module)
        recorder.llm_module = "_tensorrt_engine"
        llmapi.LLM = None  # type: ignore[attr-defined]  # the PyTorch LLM must not be used
    else:
        monkeypatch.setitem(sys.modules, "tensorrt_llm._tensorrt_engine", None)
        llmapi.LLM = llm  # type: ignore[attr-defined]
        recorder.llm_module = "llmapi"
    return recorder


@pytest.fixture(params=["current", "older"])
def fake(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Recorder:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))
    return install_fake(monkeypatch, request.param)


def config(model_dir: Path, **overrides: Any) -> ExperimentConfig:
    tensorrt = overrides.pop("tensorrt", {})
    task = {"model": str(model_dir), "max_input_tokens": 16, "max_output_tokens": 5}
    task.update(overrides.pop("task", {}))
    return ExperimentConfig(engine="tensorrt", tensorrt=tensorrt, task=task, **overrides)


def load(cfg: ExperimentConfig) -> TensorRTLoadedModel:
    engine = get_engine("tensorrt")
    assert isinstance(engine, Engine)
    loaded = engine.load(cfg, resolve_model(cfg.task.model))
    assert isinstance(loaded, TensorRTLoadedModel) and isinstance(loaded, LoadedModel)
    return loaded


FULL_SECTION = {
    "max_batch_size": 4,
    "tensor_parallel_size": 2,
    "dtype": "bfloat16",
    "quant_config": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"},
    "kv_cache_config": {"free_gpu_memory_fraction": 0.5, "enable_block_reuse": True},
    "sampling": {
        "temperature": 0.7,
        "top_k": 5,
        "top_p": 0.9,
        "repetition_penalty": 1.1,
        "min_tokens": 2,
    },
}


# ------------------------------------------------------------------ mapping


def test_every_field_of_the_section_reaches_the_library(fake: Recorder, model_dir: Path) -> None:
    model = load(config(model_dir, tensorrt=FULL_SECTION, task={"random_seed": 7}))
    (built,) = fake.created
    assert built["model"] == str(model_dir)
    assert built["tokenizer"] == str(model_dir)
    assert built["dtype"] == "bfloat16"
    assert built["tensor_parallel_size"] == 2
    assert built["trust_remote_code"] is False
    build = built["build_config"]
    assert (build.max_batch_size, build.max_input_len, build.max_seq_len) == (4, 16, 21)
    assert built["quant_config"].quant_algo == FakeQuantAlgo.FP8
    assert built["quant_config"].kv_cache_quant_algo == FakeQuantAlgo.FP8
    assert built["kv_cache_config"].free_gpu_memory_fraction == 0.5
    assert built["kv_cache_config"].enable_block_reuse is True
    params = dataclasses.asdict(model._sampling_params)
    seed_field = "seed" if fake.llm_module == "_tensorrt_engine" else "random_seed"
    assert params == {
        **{k: None for k in params},
        "end_id": EOS,
        "pad_id": 1,
        "max_tokens": 5,
        "stop_token_ids": [END2],
        "top_k": 5,
        "top_p": 0.9,
        seed_field: 7,
        "temperature": 0.7,
        "min_tokens": 2,
        "repetition_penalty": 1.1,
    }
    # what was given is recorded for the result
    args = model.info.engine_args
    assert args["llm"]["build_config"]["max_batch_size"] == 4
    assert args["llm"]["quant_config"] == {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}
    assert args["llm"]["kv_cache_config"] == FULL_SECTION["kv_cache_config"]
    assert args["sampling_params"][seed_field] == 7
    assert model.info.device == "cuda:0,cuda:1"


def test_unset_fields_keep_the_library_defaults(fake: Recorder, model_dir: Path) -> None:
    model = load(config(model_dir))
    (built,) = fake.created
    assert built["dtype"] == "auto"
    assert built["tensor_parallel_size"] == 1
    assert "quant_config" not in built and "kv_cache_config" not in built
    # BuildConfig's own default batch size is what the result records
    assert model.info.engine_args["llm"]["build_config"]["max_batch_size"] == 2048
    assert model.info.dtype == "float16"  # read back from the built engine
    params = dataclasses.asdict(model._sampling_params)
    assert params["temperature"] is None and params["top_k"] is None
    assert params["max_tokens"] == 5


def test_the_tensorrt_engine_llm_class_is_used(fake: Recorder, model_dir: Path) -> None:
    load(config(model_dir))
    (built,) = fake.created
    # current releases: the TensorRT-engine LLM, not the default PyTorch one
    expected = "TensorRTEngineLLM" if fake.llm_module == "_tensorrt_engine" else "FakeLLM"
    assert built["class"] == expected


def test_greedy_is_top_k_1_and_synthetic_lengths_are_exact(model_dir: Path) -> None:
    greedy = config(model_dir, tensorrt={"sampling": {"temperature": 0.0, "top_p": 0.5}})
    kwargs = sampling_kwargs(greedy, end_id=EOS, pad_id=1)
    assert kwargs["top_k"] == 1
    assert "temperature" not in kwargs and "top_p" not in kwargs
    synthetic = config(
        model_dir,
        task={
            "dataset": {"source": "synthetic", "input_len": 8, "output_len": 4},
            "max_output_tokens": 5,
        },
        tensorrt={"sampling": {"min_tokens": 1}},
    )
    kwargs = sampling_kwargs(synthetic, end_id=None, pad_id=None)
    assert (kwargs["max_tokens"], kwargs["min_tokens"]) == (4, 4)
    assert "end_id" not in kwargs and "stop_token_ids" not in kwargs


# ------------------------------------------------------------------ the engine cache


def test_a_built_engine_is_cached_and_reused(
    fake: Recorder, model_dir: Path, tmp_path: Path
) -> None:
    first = load(config(model_dir, tensorrt={"max_batch_size": 4}))
    cache = first.info.engine_args["engine_cache"]
    engine_dir = Path(cache["dir"])
    assert cache["hit"] is False
    assert engine_dir.parent.parent == tmp_path / "cache"
    assert (engine_dir / ENGINE_COMPLETE_FILE).is_file()
    assert fake.saved and fake.saved[0].parent == engine_dir.parent  # saved beside, then renamed
    assert not fake.saved[0].exists()
    assert first.info.model_memory_mib == pytest.approx(ENGINE_BYTES / 2**20)
    first.close()
    assert fake.shutdowns == 1

    # same build settings, other runtime settings: loaded from the cache, not rebuilt
    again = load(
        config(
            model_dir,
            tensorrt={"max_batch_size": 4, "kv_cache_config": {"free_gpu_memory_fraction": 0.3}},
        )
    )
    assert again.info.engine_args["engine_cache"] == {**cache, "hit": True}
    assert len(fake.saved) == 1
    loaded = fake.created[-1]
    assert loaded["model"] == str(engine_dir)
    assert "build_config" not in loaded
    assert loaded["kv_cache_config"].free_gpu_memory_fraction == 0.3
    assert any("loaded from the cache" in note for note in again.info.notes)

    # a build setting changed: a new engine
    other = load(config(model_dir, tensorrt={"max_batch_size": 8}))
    assert other.info.engine_args["engine_cache"]["hit"] is False
    assert Path(other.info.engine_args["engine_cache"]["dir"]) != engine_dir
    assert len(fake.saved) == 2


def test_an_unfinished_engine_folder_is_rebuilt(fake: Recorder, model_dir: Path) -> None:
    first = load(config(model_dir))
    engine_dir = Path(first.info.engine_args["engine_cache"]["dir"])
    (engine_dir / ENGINE_COMPLETE_FILE).unlink()  # as if a build had died before the end
    again = load(config(model_dir))
    assert again.info.engine_args["engine_cache"] == {
        **first.info.engine_args["engine_cache"],
        "hit": False,
    }
    assert (engine_dir / ENGINE_COMPLETE_FILE).is_file()
    assert len(fake.saved) == 2


def test_a_changed_gpu_model_gets_its_own_engine(
    fake: Recorder, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    first = load(config(model_dir))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA L4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (8, 9))
    on_l4 = load(config(model_dir))
    assert on_l4.info.engine_args["engine_cache"]["hit"] is False
    assert (
        on_l4.info.engine_args["engine_cache"]["key"]
        != first.info.engine_args["engine_cache"]["key"]
    )


# ------------------------------------------------------------------ prompts and tokens


def test_prompts_are_templated_truncated_and_counted(fake: Recorder, model_dir: Path) -> None:
    model = load(config(model_dir))
    long_prompt = " ".join(f"w{i % 60}" for i in range(40))
    prepared = model.prepare([long_prompt, "w1 w2 w3", "w4 w5"])
    ids = prepared.payload.ids
    assert prepared.n_input_tokens == tuple(len(r) for r in ids)
    assert prepared.n_input_tokens[0] == 16  # truncated to max_input_tokens
    assert all(r[0] == USER and r[-1] == ASSISTANT for r in ids)  # the template survives
    seen: list[tuple[int, int | None]] = []
    out = model.generate(prepared, on_progress=lambda done, n=None: seen.append((done, n)))
    assert out.timing_definition == CONTINUOUS_BATCH_TIMING
    assert [done for done, _ in seen] == [1, 2, 3]
    # Requests end in any order: the tokens so far are those of the requests ended so far.
    assert seen[-1][1] == sum(r.n_output_tokens for r in out.requests)
    tokens = [n for _, n in seen]
    assert None not in tokens and tokens == sorted(tokens)
    assert [ids for ids, _ in fake.requests] == ids
    for request, prompt_ids in zip(out.requests, ids, strict=True):
        expected, reason, _ = fake_tokens(prompt_ids, fake.requests[0][1])
        if reason == "stop":  # the end token TensorRT-LLM leaves out is counted
            expected = [*expected, EOS]
        assert request.token_ids == tuple(expected)
        assert request.n_output_tokens == len(expected)
        assert request.n_input_tokens == len(prompt_ids)
        assert request.ttft_ms is not None and 0 <= request.ttft_ms <= request.latency_ms
    lengths = {r.n_output_tokens for r in out.requests}
    assert lengths == {3, 5}  # one stopped at EOS, the others ran to max_output_tokens
    assert [r.index for r in out.requests] == [0, 1, 2]


def test_chat_template_true_without_one_is_refused(
    fake: Recorder, model_dir: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for item in model_dir.iterdir():
        if item.name != "chat_template.jinja":
            (bare / item.name).write_bytes(item.read_bytes())
    config_file = bare / "tokenizer_config.json"
    data = json.loads(config_file.read_text())
    data.pop("chat_template", None)
    config_file.write_text(json.dumps(data))
    with pytest.raises(EngineError, match="no chat template"):
        load(config(bare, task={"chat_template": True}))
    assert fake.created == []  # refused before any engine build


def test_info_counts_parameters_from_the_weights(fake: Recorder, model_dir: Path) -> None:
    info = load(config(model_dir)).info
    assert info.n_params == VOCAB * HIDDEN + HIDDEN * 3 * HIDDEN + HIDDEN
    assert info.n_non_embedding_params == HIDDEN * 3 * HIDDEN + HIDDEN
    assert info.engine_version in {"0.99.0", "0.12.0"}
    assert info.engine_args["chat_template"] is True
    assert info.engine_args["eos_token_ids"] == [EOS, END2]


# ------------------------------------------------------------------ probe and pre-flight


def test_probe_without_the_library_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt_llm", None)
    availability = TensorRTEngine().probe()
    assert not availability.available
    assert "pip install 'llenergymeasure[tensorrt]'" in availability.reason


def test_probe_with_the_library_reports_its_version(fake: Recorder) -> None:
    availability = TensorRTEngine().probe()
    assert availability.available
    assert availability.version in {"0.99.0", "0.12.0"}


def _preflight(
    monkeypatch: pytest.MonkeyPatch,
    model_dir: Path,
    gpus: list[SimulatedGpu] | None,
    **section: Any,
) -> list[str]:
    """Pre-flight problems of a tensorrt config on simulated GPUs (None: no pynvml)."""
    monkeypatch.setitem(sys.modules, "pynvml", None if gpus is None else SimulatedNvml(gpus))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cfg = config(
        model_dir,
        tensorrt=section,
        task={"dataset": {"n_prompts": 4}},
        measurement={"energy_sampler": "none"},
    )
    try:
        run_preflight(cfg, user=UserConfig(), overrides=Overrides(engine=TensorRTEngine()))
    except PreflightError as err:
        return err.problems
    return []


@pytest.fixture
def with_library(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))
    install_fake(monkeypatch, "current")
    yield


def test_preflight_refuses_a_host_without_an_nvidia_gpu(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, with_library: None
) -> None:
    (problem,) = _preflight(monkeypatch, model_dir, None)
    assert "TensorRT-LLM needs an NVIDIA GPU of compute capability 7.5 or newer" in problem
    assert "pynvml not installed" in problem
    (problem,) = _preflight(monkeypatch, model_dir, [])
    assert "none found (no NVIDIA GPU" in problem


def test_preflight_refuses_gpus_older_than_turing(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, with_library: None
) -> None:
    v100 = SimulatedGpu("Tesla V100-SXM2-16GB", "GPU-v100", compute_capability=(7, 0))
    (problem,) = _preflight(monkeypatch, model_dir, [v100])
    assert problem == (
        "TensorRT-LLM needs compute capability 7.5 or newer; gpu:0 (Tesla V100-SXM2-16GB) has 7.0"
    )


@pytest.mark.parametrize(
    "section",
    [{"quant_config": {"quant_algo": "FP8"}}, {"quant_config": {"kv_cache_quant_algo": "FP8"}}],
)
def test_preflight_refuses_fp8_below_ada(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, with_library: None, section: dict[str, Any]
) -> None:
    a100 = SimulatedGpu("NVIDIA A100-SXM4-80GB", "GPU-a100", compute_capability=(8, 0))
    (problem,) = _preflight(monkeypatch, model_dir, [a100], **section)
    assert problem.startswith("FP8 (tensorrt.quant_config.")
    assert "needs compute capability 8.9 or newer; gpu:0 (NVIDIA A100-SXM4-80GB) has 8.0" in problem
    h100 = SimulatedGpu("NVIDIA H100 80GB HBM3", "GPU-h100", compute_capability=(9, 0))
    assert _preflight(monkeypatch, model_dir, [h100], **section) == []
    l4 = SimulatedGpu("NVIDIA L4", "GPU-l4", compute_capability=(8, 9))
    assert _preflight(monkeypatch, model_dir, [l4], **section) == []


def test_preflight_refuses_bfloat16_on_turing_and_counts_gpus(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, with_library: None
) -> None:
    t4 = SimulatedGpu("Tesla T4", "GPU-t4", compute_capability=(7, 5))
    assert _preflight(monkeypatch, model_dir, [t4]) == []
    (problem,) = _preflight(monkeypatch, model_dir, [t4], dtype="bfloat16")
    assert problem.startswith("bfloat16 (tensorrt.dtype) needs compute capability 8.0")
    (problem,) = _preflight(monkeypatch, model_dir, [t4], tensor_parallel_size=2)
    assert "needs 2 NVIDIA GPU(s)" in problem and "sees 1" in problem


def test_preflight_lists_a_missing_library_with_the_gpu_problem(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt_llm", None)
    problems = _preflight(monkeypatch, model_dir, None)
    assert len(problems) == 2
    assert any(
        "engine `tensorrt` is unavailable: tensorrt_llm not installed" in p for p in problems
    )
    assert any("needs an NVIDIA GPU" in p for p in problems)
