"""Per-step timing without a host wait per step: CUDA events on a simulated device, the host
clock on the CPU, and the step marker inside the real transformers ``generate``."""

from __future__ import annotations

import time

import pytest

from llenergymeasure.engines.timing import (
    EventStepClock,
    HostStepClock,
    StepMarker,
    requests_from_steps,
)
from llenergymeasure.testing.simulated_cuda import SimulatedCudaDevice
from llenergymeasure.testing.simulated_nvml import ManualClock


def _event_clock(device: SimulatedCudaDevice) -> EventStepClock:
    return EventStepClock(
        lambda: device.Event(enable_timing=True),
        stream=device.current_stream(),
        clock=device.clock,
    )


def _launch_bound_batch(
    device: SimulatedCudaDevice, clock: EventStepClock | HostStepClock, n_steps: int
) -> None:
    """A batch whose host issues each step in 1 ms while the device needs 10 ms per step."""
    host = device.clock
    assert isinstance(host, ManualClock)
    clock.start()
    for _ in range(n_steps):
        host.advance(0.001)
        device.launch(0.010)
        clock.step()


def test_event_clock_gives_device_completion_times_with_one_wait_per_batch() -> None:
    device = SimulatedCudaDevice(ManualClock(100.0))
    clock = _event_clock(device)
    _launch_bound_batch(device, clock, n_steps=4)
    assert device.n_host_waits == 0  # the host never waited inside the batch
    timing = clock.resolve([3, 4])
    assert device.n_host_waits == 1
    assert timing.indices == (3, 4)
    assert timing.start_s == pytest.approx(100.0)
    # first kernel issued at 100.001, then back to back: done at .011, .021, .031, .041
    assert timing.step_end_s == pytest.approx((100.011, 100.021, 100.031, 100.041))
    records = requests_from_steps(
        batch_start_s=timing.start_s,
        step_times_s=timing.step_end_s,
        indices=timing.indices,
        n_input_tokens=[5, 5],
        n_output_tokens=[4, 2],
    )
    assert records[0].ttft_ms == pytest.approx(11.0)
    assert records[0].itl_ms == pytest.approx(10.0)
    assert records[1].latency_ms == pytest.approx(21.0)


def test_the_host_clock_on_a_queued_device_would_time_the_launches() -> None:
    # Why the GPU path uses events: host timestamps say when steps were issued (1 ms apart),
    # not when they ran (10 ms apart).
    device = SimulatedCudaDevice(ManualClock(0.0))
    clock = HostStepClock(clock=device.clock)
    _launch_bound_batch(device, clock, n_steps=3)
    assert clock.resolve([0]).step_end_s == pytest.approx((0.001, 0.002, 0.003))


def test_a_batch_without_steps_resolves_without_waiting() -> None:
    device = SimulatedCudaDevice(ManualClock(5.0))
    clock = _event_clock(device)
    clock.start()
    timing = clock.resolve([0])
    assert timing.step_end_s == ()
    assert device.n_host_waits == 0


def test_the_clock_is_reusable_batch_after_batch() -> None:
    device = SimulatedCudaDevice(ManualClock(0.0))
    clock = _event_clock(device)
    _launch_bound_batch(device, clock, n_steps=2)
    first = clock.resolve([0])
    device.clock.advance(1.0)  # type: ignore[attr-defined]
    _launch_bound_batch(device, clock, n_steps=1)
    second = clock.resolve([1])
    assert len(first.step_end_s) == 2 and len(second.step_end_s) == 1
    assert second.start_s == pytest.approx(first.step_end_s[-1] + 1.0)
    assert second.step_end_s[0] == pytest.approx(second.start_s + 0.011)


def test_simulated_events_refuse_what_cuda_refuses() -> None:
    device = SimulatedCudaDevice(ManualClock(0.0))
    start, end = device.Event(enable_timing=True), device.Event(enable_timing=True)
    with pytest.raises(RuntimeError, match="must be recorded"):
        start.elapsed_time(end)
    start.record()
    device.launch(0.5)
    end.record(device.current_stream())
    assert not end.query()
    with pytest.raises(RuntimeError, match="device not ready"):
        start.elapsed_time(end)
    end.synchronize()
    assert end.query() and device.clock() == pytest.approx(0.5)
    assert start.elapsed_time(end) == pytest.approx(500.0)
    untimed = device.Event()
    untimed.record()
    with pytest.raises(RuntimeError, match="enable_timing=True"):
        start.elapsed_time(untimed)
    with pytest.raises(RuntimeError, match="another device"):
        start.record(SimulatedCudaDevice().current_stream())


def test_a_real_clock_device_sleeps_until_the_work_is_done() -> None:
    device = SimulatedCudaDevice(time.perf_counter)
    began = time.perf_counter()
    device.launch(0.05)
    device.synchronize()
    assert time.perf_counter() - began >= 0.05
    assert device.n_host_waits == 1


@pytest.mark.model
def test_the_step_marker_in_the_real_generate_records_one_event_per_token() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteriaList

    from llenergymeasure.engines.model_files import ensure_converted
    from llenergymeasure.engines.resolve import resolve_model

    folder = str(ensure_converted(resolve_model("smollm2-135m")))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = torch.tensor([tokenizer.encode("The capital of France is")] * 2)
    device = SimulatedCudaDevice(time.perf_counter)
    clock = _event_clock(device)
    clock.start()
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=6,
            min_new_tokens=6,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
            stopping_criteria=StoppingCriteriaList([StepMarker(clock)]),
        )
    assert device.n_host_waits == 0  # nothing inside generate waited on the device
    timing = clock.resolve([0, 1])
    assert out.shape[1] - ids.shape[1] == 6
    assert len(timing.step_end_s) == 6  # one event per generated token
    assert list(timing.step_end_s) == sorted(timing.step_end_s)
    assert timing.step_end_s[0] > timing.start_s
