"""How an isolated run ended: one typed :class:`RunOutcome`, never a bare traceback string."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llenergymeasure.study.child import Completed, Failed
from llenergymeasure.study.models import HeadlineMetrics

__all__ = ["Ended", "OutcomeStatus", "RunOutcome", "outcome_of"]

OutcomeStatus = Literal["completed", "failed", "crashed", "timed_out", "interrupted"]
# Why the parent stopped waiting: the child exited, the run's timeout or its silence
# watchdog fired, or the study was stopped.
Ended = Literal["exited", "timeout", "silent", "stopped"]


# Alike study/events.py:RunEvent, kept apart because only the field shape matches
# Alike energy/telemetry.py:DeviceSample, kept apart because only the field shape matches
@dataclass(frozen=True)
class RunOutcome:
    """How one isolated run ended; ``message`` is one line for the manifest."""

    status: OutcomeStatus
    duration_s: float
    message: str | None = None
    error_type: str | None = None
    result_dir: Path | None = None
    metrics: HeadlineMetrics | None = None
    log_path: Path | None = None
    exit_code: int | None = None
    signal_name: str | None = None


def outcome_of(
    message: Completed | Failed | None,
    exit_code: int | None,
    ended: Ended,
    *,
    duration_s: float,
    limit_s: float,
    log: Path,
) -> RunOutcome:
    """The outcome from what the child sent and why the wait ended.

    ``limit_s`` is the limit that fired: the run's timeout, or its silence watchdog's.
    """
    kept_log = log if log.is_file() and log.stat().st_size > 0 else None
    if isinstance(message, Completed):
        return RunOutcome(
            "completed",
            duration_s,
            result_dir=message.result_dir,
            metrics=message.metrics,
            log_path=kept_log,
        )
    if isinstance(message, Failed):
        text = f"{message.error_type}: {message.message}" if message.message else message.error_type
        return RunOutcome(
            "failed", duration_s, text, message.error_type, log_path=kept_log, exit_code=exit_code
        )
    if ended == "stopped":
        text = "interrupted: the run was stopped and its process group killed"
        return RunOutcome("interrupted", duration_s, text, log_path=kept_log)
    if ended == "timeout":
        text = f"timed out: no result after {limit_s:g} s; its process group was killed"
        return RunOutcome("timed_out", duration_s, text, log_path=kept_log)
    if ended == "silent":
        text = (
            f"timed out: silent for {limit_s:g} s (no output, no progress; "
            "experiment_silence_timeout_s); its process group was killed"
        )
        return RunOutcome("timed_out", duration_s, text, log_path=kept_log)
    return _crash(exit_code, duration_s, kept_log)


def _crash(exit_code: int | None, duration_s: float, log: Path | None) -> RunOutcome:
    if exit_code is not None and exit_code < 0:
        name = _signal_name(-exit_code)
        text = f"crashed: killed by {name}"
        if -exit_code == signal.SIGKILL:
            text += " (possibly the OOM killer)"
        return RunOutcome(
            "crashed", duration_s, text, log_path=log, exit_code=exit_code, signal_name=name
        )
    text = f"crashed: exited with code {exit_code} before sending a result"
    last = last_line(log)
    if last:
        text += f" (its log ends: {last})"
    return RunOutcome("crashed", duration_s, text, log_path=log, exit_code=exit_code)


def last_line(log: Path | None) -> str | None:
    """The last non-empty line of a log, e.g. an import error in a runner's environment."""
    if log is None:
        return None
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - 4096))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return " ".join(lines[-1].split())[:300] if lines else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
