"""The transformers engine on the real bundled model, on the CPU."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from llenergymeasure.config import ExperimentConfig
from llenergymeasure.engines.registry import get_engine
from llenergymeasure.engines.resolve import resolve_model
from llenergymeasure.engines.transformers import TransformersLoadedModel

pytestmark = pytest.mark.model


def _config(**transformers: object) -> ExperimentConfig:
    return ExperimentConfig(
        task={"max_input_tokens": 64, "max_output_tokens": 12},
        transformers={"batch_size": 2, "sampling": {"do_sample": False}, **transformers},
    )


@pytest.fixture(scope="module")
def model() -> Iterator[TransformersLoadedModel]:
    engine = get_engine("transformers")
    loaded = engine.load(_config(), resolve_model("smollm2-135m"))
    assert isinstance(loaded, TransformersLoadedModel)
    yield loaded
    loaded.close()


def test_probe_and_devices_on_cpu() -> None:
    engine = get_engine("transformers")
    assert engine.probe().available
    assert engine.devices(_config()) == ["cpu"]
    assert engine.preflight(_config(load_in_4bit=True), resolve_model("smollm2-135m"))


def test_info_records_what_was_loaded(model: TransformersLoadedModel) -> None:
    info = model.info
    assert info.device == "cpu"
    assert info.dtype == "float32"
    assert info.n_params is not None and 100e6 < info.n_params < 200e6
    assert info.n_non_embedding_params is not None
    assert info.n_non_embedding_params < info.n_params
    assert info.engine_args["generate"]["max_new_tokens"] == "12"
    assert info.engine_args["from_pretrained"]["local_files_only"] == "True"


def test_truncation_keeps_the_template_and_fits(model: TransformersLoadedModel) -> None:
    long_prompt = "Describe the history of the printing press in detail. " * 40
    prepared = model.prepare([long_prompt, "Hi"])
    assert prepared.n_input_tokens[0] == 64
    assert prepared.n_input_tokens[1] < 64
    ids = prepared.payload[0].input_ids[0].tolist()
    text = model.decode(ids)
    assert text.rstrip().endswith("assistant")  # generation prompt survived truncation


def test_generate_counts_real_tokens_and_times_steps(model: TransformersLoadedModel) -> None:
    prompts = ["What is the capital of France? Answer in one word.", "Count from one to twenty."]
    seen: list[tuple[int, int | None]] = []
    out = model.generate(
        model.prepare(prompts), on_progress=lambda done, n=None: seen.append((done, n))
    )
    short, long = out.requests
    # One batch: its requests and the real tokens counted, padding left out.
    assert seen == [(2, short.n_output_tokens + long.n_output_tokens)]
    eos = model._tokenizer.eos_token_id
    # The short answer stops at EOS; nothing after it (padding) is counted.
    assert short.token_ids[-1] == eos
    assert short.n_output_tokens == len(short.token_ids) < 12
    assert long.n_output_tokens == 12
    assert short.ttft_ms == long.ttft_ms  # the batch shares its prefill
    assert short.latency_ms < long.latency_ms
    assert long.itl_ms is not None and long.itl_ms > 0


def test_greedy_decoding_is_deterministic(model: TransformersLoadedModel) -> None:
    prepared = model.prepare(["Name three colours."])
    first = model.generate(prepared).requests[0].token_ids
    second = model.generate(prepared).requests[0].token_ids
    assert first == second
    assert "Paris" in model.decode(
        list(
            model.generate(model.prepare(["What is the capital of France?"])).requests[0].token_ids
        )
    )


def test_on_cuda_each_step_is_a_cuda_event_and_the_host_waits_once_per_batch(
    model: TransformersLoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same model placed on "cuda" times its steps with events on the simulated device's
    stream: every forward pass queues a 5 ms kernel and the host clock stands still, so any
    wait on the device inside the decode loop would show in the count of host waits."""
    import torch

    from llenergymeasure.testing.simulated_cuda import SimulatedCudaDevice
    from llenergymeasure.testing.simulated_nvml import ManualClock

    device = SimulatedCudaDevice(ManualClock(0.0))
    monkeypatch.setattr(torch.cuda, "Event", device.Event)
    monkeypatch.setattr(torch.cuda, "current_stream", device.current_stream)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *_: device.synchronize())
    network = model._model
    forward = network.forward

    def forward_on_the_device(*args: object, **kwargs: object) -> object:
        device.launch(0.005)
        return forward(*args, **kwargs)

    monkeypatch.setattr(network, "forward", forward_on_the_device)
    prepared = model.prepare(["Count from one to twenty.", "Name a colour.", "Hi", "Why?"])
    on_cuda = TransformersLoadedModel(
        model._config,
        network,
        model._tokenizer,
        dataclasses.replace(model.info, device="cuda:0"),
        model._generate_kwargs,
    )
    out = on_cuda.generate(prepared)
    assert len(out.batches) == 2
    assert device.n_host_waits == 2  # one per batch, when its events are read
    for batch in out.batches:
        offsets_ms = [1000.0 * (t - batch.start_s) for t in batch.step_end_s]
        # step k completes when the device has run k + 1 forward passes
        assert offsets_ms == pytest.approx([5.0 * (k + 1) for k in range(len(offsets_ms))])
    assert [r.ttft_ms for r in out.requests] == pytest.approx([5.0] * 4)
    longest = max(out.requests, key=lambda r: r.n_output_tokens)
    assert longest.n_output_tokens == 12 and longest.itl_ms == pytest.approx(5.0)
