"""Child targets for ``run_isolated(target=...)``: module-level, so spawn can import them.

Spawn hands the child the parent's ``sys.path`` before it unpickles the target, so a
module that pytest put on the path (``tests/study``) is importable in the child too.
Each target has the signature of :data:`llenergymeasure.study.isolation.ChildTarget`.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.experiment.options import RunOptions
from llenergymeasure.experiment.reporter import Reporter
from llenergymeasure.experiment.run import run_experiment
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.system.locks import DeviceLocks, runtime_dir
from llenergymeasure.testing.fake_sampler import FakeEnergySampler
from llenergymeasure.testing.h200 import h200_nvml
from llenergymeasure.testing.simulated_gpu_engine import SimulatedGpuEngine

# Environment variables the tests set for the child (spawn passes the environment).
PID_FILE_ENV = "LLEM_TEST_PID_FILE"
FAIL_LATENCY_MS = 0.5  # configs with this fake prefill latency fail in `fail_marked`
FAKE_POWER_W = 10.0


def fake_energy(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    """The real experiment with a scripted 10 W sampler, so J/token has a value."""
    sampler = FakeEnergySampler({"cpu:0": FAKE_POWER_W}, method="counter")
    return run_experiment(config, sampler=sampler, reporter=reporter)


def fail_marked(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    """Raises for configs whose fake prefill latency is FAIL_LATENCY_MS; runs the rest."""
    if config.fake is not None and config.fake.prefill_latency_ms == FAIL_LATENCY_MS:
        raise RuntimeError("scripted failure for this config")
    return fake_energy(config, reporter)


def always_fail(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    raise ValueError("this target always fails")


def segfault(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable")


def hang_with_grandchild(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    """Starts a grandchild, writes both pids to $LLEM_TEST_PID_FILE, then never returns."""
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path(os.environ[PID_FILE_ENV]).write_text(f"{os.getpid()} {grandchild.pid}")
    with reporter.step("hanging"):
        while True:
            time.sleep(1)


def hog_memory(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    """Allocates until the address-space limit set here stops it (never the host's memory)."""
    vm_kib = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmSize:")
    )
    limit = vm_kib * 1024 + 256 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    hoard = []
    while True:
        hoard.append(bytearray(32 * 2**20))


def silent_hang(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    """Says nothing and never returns: what the silence watchdog is for."""
    while True:
        time.sleep(1)


def long_announced_wait(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    """A 3 s wait announced as one event (a thermal floor), then the real experiment."""
    reporter.wait(3.0, "thermal floor")
    return run_experiment(config, reporter=reporter)


def chatty(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    """No events for 3 s, but a line on its output every 0.3 s, then the real experiment."""
    for _ in range(10):
        print("still loading", flush=True)
        time.sleep(0.3)
    return run_experiment(config, reporter=reporter)


class _LockProbe:
    """Passes every event on; at the window, tries the GPU locks the run should hold."""

    def __init__(self, inner: Reporter, uuids: list[str]) -> None:
        self._inner = inner
        self._uuids = uuids
        self.held: list[str] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if name == "measuring":
            probe = DeviceLocks(self._uuids, runtime_dir())
            busy = probe.try_acquire()  # the runs on the other GPUs hold theirs too
            probe.release()
            self.held = sorted(u for u, holder in busy.items() if holder.pid == os.getpid())
        with self._inner.step(name):
            yield

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def simulated_gpu_locks(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    """The experiment on cuda:0 of three simulated H200s, as CUDA_VISIBLE_DEVICES shows them
    (Ray sets it to the GPU it gave the task); fails unless the run held that GPU's lock,
    and only that one, while it measured."""
    nvml = h200_nvml(3)
    uuids = [gpu.uuid for gpu in nvml.gpus]
    probe = _LockProbe(reporter, uuids)
    result = run_experiment(
        config,
        engine=SimulatedGpuEngine(nvml),
        nvml=nvml,
        reporter=probe,
        options=RunOptions.from_environ(),
    )
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    expected = [uuids[int(visible.split(",")[0])]] if visible else [uuids[0]]
    if probe.held != expected:
        raise RuntimeError(f"locks held while measuring: {probe.held}, expected {expected}")
    return result
