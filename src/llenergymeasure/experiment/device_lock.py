"""The devices a run measures, locked from its first idle reading to the end of its window.

One lock per GPU UUID in scope, and one for the CPU packages when the energy sampler
reads RAPL (whole-package counters see every process). A device another llem run holds
is waited for with a countdown, up to the run's lock timeout; then the run fails, naming
the holder's PID and command.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from llenergymeasure.errors import PreflightError
from llenergymeasure.experiment.gpu_checks import MeasuredScope
from llenergymeasure.experiment.options import RunOptions
from llenergymeasure.experiment.reporter import Reporter
from llenergymeasure.system.locks import DeviceLocks, LockHolder, locks_supported, runtime_dir

__all__ = ["CPU_PACKAGES_KEY", "device_lock_keys", "locked_devices"]

CPU_PACKAGES_KEY = "cpu-packages-rapl"
# How often a waiting run tries again (and redraws its countdown).
_RETRY_S = 1.0


def device_lock_keys(plan: MeasuredScope) -> dict[str, str]:
    """Lock key -> what it guards, for messages: GPU UUIDs in scope, RAPL's CPU packages."""
    keys = {gpu.uuid: f"{gpu.device} ({gpu.name}, {gpu.uuid})" for gpu in plan.scope_gpus}
    if _reads_cpu_packages(plan.sampler):
        keys[CPU_PACKAGES_KEY] = "the CPU packages (RAPL)"
    return keys


def _reads_cpu_packages(sampler: object) -> bool:
    """Whether the sampler, or a part of a composite, reads RAPL: ``rapl`` itself, or a
    sampler that says so (Zeus measuring CPUs)."""
    parts = getattr(sampler, "parts", None) or (sampler,)
    return any(
        getattr(part, "name", None) == "rapl" or getattr(part, "reads_cpu_packages", False)
        for part in parts
    )


@contextmanager
def locked_devices(
    plan: MeasuredScope,
    options: RunOptions,
    reporter: Reporter,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str | None]:
    """Hold the plan's device locks inside the block; yields why none are held, if so."""
    keys = device_lock_keys(plan)
    if not keys:
        yield None
        return
    if not options.lock:
        yield "not locked (--no-lock)"
        return
    if not locks_supported():
        yield "not locked: this platform has no flock"
        return
    locks = DeviceLocks(list(keys), runtime_dir())
    _acquire(locks, keys, options.lock_timeout_s, reporter, clock)
    try:
        yield None
    finally:
        locks.release()


def _acquire(
    locks: DeviceLocks,
    keys: dict[str, str],
    timeout_s: float,
    reporter: Reporter,
    clock: Callable[[], float],
) -> None:
    deadline = clock() + timeout_s
    while True:
        busy = locks.try_acquire()
        if not busy:
            return
        left_s = deadline - clock()
        if left_s <= 0:
            raise PreflightError(
                [_held(keys[key], holder) for key, holder in busy.items()],
                hint="wait for that run to end, raise --lock-timeout, or pass --no-lock to "
                "measure anyway (both figures will be wrong)",
            )
        key, holder = next(iter(busy.items()))
        reporter.wait(
            min(_RETRY_S, left_s),
            f"{keys[key]} is being measured by {holder.describe()}: waiting, {left_s:.0f} s left",
        )


def _held(what: str, holder: LockHolder) -> str:
    return f"{what} is being measured by another llem run: {holder.describe()}"
