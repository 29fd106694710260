"""Events and a child's final message on the wire, and the child's throttled Reporter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llenergymeasure.energy.running_energy import EnergySoFar
from llenergymeasure.experiment.reporter import WindowSoFar
from llenergymeasure.study.child import Completed, Failed, message_from_json, message_to_json
from llenergymeasure.study.events import PROGRESS_EVERY_S, EventReporter, RunEvent
from llenergymeasure.study.models import HeadlineMetrics


@pytest.mark.parametrize(
    "event",
    [
        RunEvent("phase", "loading model"),
        RunEvent("progress", "measuring", done=3, total=10),
        RunEvent(
            "progress",
            "measuring",
            done=3,
            total=10,
            n_output_tokens=96,
            energy_j=12.5,
            energy_method="counter",
        ),
        RunEvent("wait", "thermal floor", seconds=60.0),
        RunEvent("alert", "no news from its Ray worker for 6 s"),
    ],
)
def test_an_event_survives_json(event: RunEvent) -> None:
    wire = json.loads(json.dumps(event.to_json()))
    assert RunEvent.from_json(wire) == event


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"kind": "phase"},
        {"kind": "nope", "text": "x"},
        {"kind": "progress", "text": "m", "done": "x"},
        {"kind": "progress", "text": "m", "n_output_tokens": "many"},
    ],
)
def test_anything_else_is_not_an_event(data: dict[str, object]) -> None:
    assert RunEvent.from_json(data) is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_reporter_sends_steps_and_at_most_one_progress_event_per_interval() -> None:
    sent: list[RunEvent] = []
    clock = Clock()
    reporter = EventReporter(sent.append, clock=clock)
    with reporter.step("measuring"):
        reporter.start_progress(10, "measuring")
        for done in range(1, 10):
            clock.now += PROGRESS_EVERY_S / 4
            reporter.advance(done)
        reporter.advance(10)  # the last one always goes
    progress = [e for e in sent if e.kind == "progress"]
    assert sent[0] == RunEvent("phase", "measuring")
    assert progress[0] == RunEvent("progress", "measuring", done=0, total=10)
    assert progress[-1] == RunEvent("progress", "measuring", done=10, total=10)
    assert 3 <= len(progress) <= 5  # 9 calls over 2.25 intervals, plus the first and last


def test_a_wait_is_announced_with_its_length_before_it_sleeps() -> None:
    sent: list[RunEvent] = []
    EventReporter(sent.append).wait(0.01, "thermal floor")
    assert sent == [RunEvent("wait", "thermal floor", seconds=0.01)]


def test_an_unknown_energy_method_is_dropped_not_trusted() -> None:
    event = RunEvent.from_json(
        {"kind": "progress", "text": "m", "energy_j": 3.0, "energy_method": "guessed"}
    )
    assert event is not None and event.energy_j == 3.0 and event.energy_method is None


def test_the_reporter_sends_tokens_and_energy_so_far_with_its_progress() -> None:
    sent: list[RunEvent] = []
    clock = Clock()
    reporter = EventReporter(sent.append, clock=clock)
    reporter.start_progress(4, "measuring")
    clock.now += PROGRESS_EVERY_S
    reporter.advance(2, WindowSoFar(64, EnergySoFar(7.25, "integrated", 1)))
    reporter.advance(4, WindowSoFar(128, None))  # the last: energy not readable
    assert sent[1] == RunEvent(
        "progress",
        "measuring",
        done=2,
        total=4,
        n_output_tokens=64,
        energy_j=7.25,
        energy_method="integrated",
    )
    assert sent[2] == RunEvent("progress", "measuring", done=4, total=4, n_output_tokens=128)
    assert "energy_j" not in sent[2].to_json()  # null, never 0


@pytest.mark.parametrize(
    "message",
    [
        Completed(
            result_dir=Path("/r/001_c1"),
            metrics=HeadlineMetrics(
                output_tokens_per_s=12.5,
                j_per_output_token=None,
                energy_j=None,
                energy_method=None,
                window_s=2.0,
            ),
        ),
        Failed(error_type="ConfigError", message="bad", hint="fix it", problems=("a", "b")),
        Failed(error_type="RuntimeError", message="boom"),
    ],
)
def test_a_childs_final_message_survives_json(message: Completed | Failed) -> None:
    wire = json.loads(json.dumps(message_to_json(message)))
    assert set(wire) == {"completed" if isinstance(message, Completed) else "failed"}
    assert message_from_json(wire) == message
    assert message_from_json({"event": {"kind": "phase", "text": "x"}}) is None
