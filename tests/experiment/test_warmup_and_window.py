"""Warm-up keeps the GPU busy through the thermal floor on prompts the window never sends
(item 13), and the window's warnings follow min_window_s and the counter cross-check
(items 4 and 14)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pytest

from llenergymeasure.config.models import ExperimentConfig, WarmupConfig
from llenergymeasure.datasets import Prompt, load_prompts
from llenergymeasure.energy.base import EnergyReading
from llenergymeasure.energy.trace_record import Trace
from llenergymeasure.engines.base import GenerationOutput, PreparedPrompts
from llenergymeasure.experiment.energy_figures import energy_result
from llenergymeasure.experiment.loading import warmup_texts
from llenergymeasure.experiment.measurement import Window
from llenergymeasure.experiment.reporter import NullReporter
from llenergymeasure.experiment.trace_view import TraceView
from llenergymeasure.experiment.validity import measurement_warnings
from llenergymeasure.experiment.warmup import run_warmup
from llenergymeasure.records.energy import DomainEnergy
from llenergymeasure.testing.simulated_nvml import ManualClock


class ClockedModel:
    """A model whose every generate takes ``seconds`` of a manual clock."""

    def __init__(self, clock: ManualClock, seconds: float) -> None:
        self.clock, self.seconds, self.calls = clock, seconds, 0

    def generate(self, prepared: PreparedPrompts, **_: Any) -> GenerationOutput:
        self.calls += 1
        self.clock.advance(self.seconds)
        return GenerationOutput(requests=(), timing_definition="")

    def synchronize(self) -> None:
        return None


class NoWaiting(NullReporter):
    def __init__(self) -> None:
        self.waited_s = 0.0

    def wait(self, seconds: float, reason: str) -> None:
        self.waited_s += seconds


BATCH = PreparedPrompts(n_input_tokens=(4,), payload=None)


def test_13_the_thermal_floor_is_spent_generating_not_idling() -> None:
    clock = ManualClock()
    model = ClockedModel(clock, seconds=0.5)
    reporter = NoWaiting()
    result = run_warmup(
        model,  # type: ignore[arg-type]
        BATCH,
        WarmupConfig(n_warmup=3, thermal_floor_s=40.0),
        on_gpu=True,
        reporter=reporter,
        clock=clock,
    )
    assert reporter.waited_s == 0.0  # the GPU never sat idle
    assert clock() == pytest.approx(40.0)
    assert model.calls == 80  # 3 warm-up runs, then 77 more through the 40 s floor
    assert (result.n_runs, result.n_floor_runs) == (80, 77)
    assert result.thermal_floor_s == 40.0


def test_13_the_floor_is_at_least_30_s_on_a_gpu_and_absent_on_the_cpu() -> None:
    clock = ManualClock()
    model = ClockedModel(clock, seconds=1.0)
    on_gpu = run_warmup(
        model, BATCH, WarmupConfig(n_warmup=1, thermal_floor_s=0.0), on_gpu=True,  # type: ignore[arg-type]
        reporter=NoWaiting(), clock=clock,
    )  # fmt: skip
    assert on_gpu.thermal_floor_s == 30.0 and on_gpu.n_runs == 30
    on_cpu = run_warmup(
        model, BATCH, WarmupConfig(n_warmup=2, thermal_floor_s=60.0), on_gpu=False,  # type: ignore[arg-type]
        reporter=NoWaiting(), clock=clock,
    )  # fmt: skip
    assert (on_cpu.n_runs, on_cpu.n_floor_runs, on_cpu.thermal_floor_s) == (2, 0, 0.0)


class Words:
    """A tokenizer of words, enough for prompt sources."""

    def encode(self, text: str) -> list[int]:
        return [hash(w) % 1000 for w in text.split()]

    def decode(self, ids: list[int]) -> str:
        return " ".join(f"w{i}" for i in ids)


def _config(**dataset: Any) -> ExperimentConfig:
    return ExperimentConfig(
        engine="fake", fake={"batch_size": 4}, task={"dataset": dataset, "max_input_tokens": 64}
    )


def _measured(config: ExperimentConfig) -> list[Prompt]:
    return load_prompts(config.task.dataset, seed=config.task.random_seed, tokenizer=Words())


@pytest.mark.parametrize(
    "dataset",
    [
        {"n_prompts": 10},
        {"n_prompts": 10, "order": "shuffled"},
        {"source": "synthetic", "n_prompts": 6, "input_len": 12},
        {"n_prompts": 241},  # the whole built-in set: none to spare
    ],
    ids=["builtin", "shuffled", "synthetic", "all-of-it"],
)
def test_13_warm_up_prompts_are_never_prompts_of_the_window(dataset: dict[str, Any]) -> None:
    config = _config(**dataset)
    measured = _measured(config)
    texts = warmup_texts(config, measured, Words())
    assert len(texts) == 4
    assert not {p.text for p in measured} & set(texts)
    # the same kind of prompt: similar lengths to the window's
    mean = sum(len(t.split()) for t in texts) / len(texts)
    assert 0.1 < mean / (sum(len(p.text.split()) for p in measured) / len(measured)) < 10


def _window(seconds: float, domains: Sequence[DomainEnergy], passes: int = 1) -> Window:
    now = datetime.now(timezone.utc)
    reading = EnergyReading("nvml", tuple(domains), seconds, 10, "high")
    output = GenerationOutput(requests=(), timing_definition="")
    return Window(now, now, seconds, output, reading, None, n_passes=passes)


def _warnings(window: Window, config: ExperimentConfig) -> set[str]:
    energy = energy_result(window, "test", n_output_tokens=10, n_requests=2, config=config)
    view = TraceView.of(Trace(interval_ms=100, samples=(), marks={}, errors=()))
    return {w.code for w in measurement_warnings(window, energy, view, config=config)}


def _gpu(gap_pct: float, source: str = "instant") -> DomainEnergy:
    return DomainEnergy(
        domain="gpu:0", energy_j=1000.0, method="counter", source="nvml",
        integrated_j=1000.0 * (1 + gap_pct / 100), gap_pct=gap_pct, power_source=source,  # type: ignore[arg-type]
    )  # fmt: skip


def test_4_a_counter_gap_over_2_pct_on_a_10_s_window_is_a_warning() -> None:
    config = ExperimentConfig()
    assert "counter_gap" in _warnings(_window(12.0, [_gpu(-2.5)]), config)
    assert "counter_gap" not in _warnings(_window(12.0, [_gpu(-1.5)]), config)
    assert "counter_gap" not in _warnings(_window(3.0, [_gpu(-4.7)]), config)  # too short to say
    # averaged power lags a second: its gap says nothing about the counter
    assert "counter_gap" not in _warnings(_window(12.0, [_gpu(-4.7, "averaged")]), config)
    assert "averaged_power" in _warnings(_window(12.0, [_gpu(-4.7, "averaged")]), config)


def test_14_the_short_window_warning_uses_min_window_s() -> None:
    domains = [_gpu(0.0)]
    assert "short_window" in _warnings(_window(5.0, domains), ExperimentConfig())
    lower = ExperimentConfig(measurement={"min_window_s": 4.0})
    assert "short_window" not in _warnings(_window(5.0, domains), lower)
    higher = ExperimentConfig(measurement={"min_window_s": 20.0})
    assert "short_window" in _warnings(_window(12.0, domains, passes=1000), higher)
