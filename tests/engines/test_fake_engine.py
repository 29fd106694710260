"""The fake engine shipped in the package behaves like a static-batching engine."""

from __future__ import annotations

from llenergymeasure.config import ExperimentConfig
from llenergymeasure.engines.base import Engine, LoadedModel
from llenergymeasure.engines.registry import get_engine
from llenergymeasure.engines.resolve import resolve_model


def _load(**fake: object) -> LoadedModel:
    config = ExperimentConfig(engine="fake", fake=fake, task={"max_output_tokens": 6})
    engine = get_engine("fake")
    assert isinstance(engine, Engine)
    return engine.load(config, resolve_model("smollm2-135m"))


def test_batches_and_token_counts() -> None:
    model = _load(batch_size=2)
    assert isinstance(model, LoadedModel)
    prepared = model.prepare(["one two three", "four", "five six"])
    assert prepared.n_input_tokens == (3, 1, 2)
    seen: list[tuple[int, int | None]] = []
    out = model.generate(prepared, on_progress=lambda done, n=None: seen.append((done, n)))
    assert seen == [(2, 12), (3, 18)]  # requests and output tokens after each batch
    assert [r.index for r in out.requests] == [0, 1, 2]
    assert all(r.n_output_tokens == 6 for r in out.requests)
    assert "static batching" in out.timing_definition


def test_deterministic_outputs() -> None:
    a = _load().generate(_load().prepare(["same prompt"]))
    b = _load().generate(_load().prepare(["same prompt"]))
    assert a.requests[0].token_ids == b.requests[0].token_ids


def test_token_latency_is_reflected_in_itl() -> None:
    model = _load(token_latency_ms=3.0, output_tokens=4)
    (req,) = model.generate(model.prepare(["x"])).requests
    assert req.n_output_tokens == 4
    assert req.itl_ms is not None and req.itl_ms >= 2.5
    assert req.latency_ms >= 4 * 2.5
