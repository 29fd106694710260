"""Exclusive locks on measured devices, one lock file per device in the user runtime directory.

Two measurements of one GPU at once corrupt each other's figures, so a run holds a lock
per GPU UUID (and one for the CPU packages when it reads RAPL) from its first idle
reading to the end of its window. The locks are ``flock`` locks: the kernel releases
them when the holder exits, however it exits, so a crashed run never leaves a stale
lock. The holder writes its PID and command into the file, so a run that finds the
device taken can say who holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["DeviceLocks", "LockHolder", "locks_supported", "runtime_dir"]

try:
    import fcntl
except ImportError:  # Windows: no flock; locking is skipped there, and says so
    fcntl = None  # type: ignore[assignment]

_APP = "llenergymeasure"


def locks_supported() -> bool:
    """Whether this platform has ``flock`` (POSIX)."""
    return fcntl is not None


def runtime_dir() -> Path:
    """``<user runtime dir>/llenergymeasure/locks``, or a per-user temp folder without one."""
    import platformdirs  # lazy: only a run that locks needs it

    for base in (Path(platformdirs.user_runtime_dir(_APP)), _temp_dir()):
        folder = base / "locks"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    raise OSError("no writable runtime folder for device locks")


@dataclass(frozen=True)
class LockHolder:
    """Who holds a device's lock: as it wrote itself into the lock file (None if unknown)."""

    pid: int | None
    command: str | None
    since: str | None

    def describe(self) -> str:
        """``PID 1234 (llem run study.yaml), since 2026-…``."""
        who = f"PID {self.pid}" if self.pid is not None else "an unknown process"
        what = f" ({self.command})" if self.command else ""
        when = f", since {self.since}" if self.since else ""
        return who + what + when


class DeviceLocks:
    """Locks on ``keys`` (device names such as a GPU UUID), taken all together or not at all."""

    def __init__(self, keys: Sequence[str], folder: Path) -> None:
        self.keys = tuple(sorted(set(keys)))  # one order for every run: no deadlock
        self.folder = folder
        self._held: dict[str, int] = {}

    def try_acquire(self) -> dict[str, LockHolder]:
        """Take every lock now; when any is taken, take none and return their holders."""
        busy: dict[str, LockHolder] = {}
        for key in self.keys:
            fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                busy[key] = _holder(fd)
                os.close(fd)
                continue
            self._held[key] = fd
            _write_holder(fd)
        if busy:
            self.release()
        return busy

    def release(self) -> None:
        """Release every lock held (closing the file releases the flock)."""
        held, self._held = self._held, {}
        for fd in held.values():
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def _path(self, key: str) -> Path:
        return self.folder / (re.sub(r"[^A-Za-z0-9._-]", "_", key) + ".lock")


def _write_holder(fd: int) -> None:
    record = {
        "pid": os.getpid(),
        "command": " ".join(_command()),
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with contextlib.suppress(OSError):  # the lock holds whether or not we can say who we are
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)


def _holder(fd: int) -> LockHolder:
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        record = {}
    if not isinstance(record, dict):
        record = {}
    pid = record.get("pid")
    return LockHolder(
        pid=pid if isinstance(pid, int) else None,
        command=str(record["command"]) if record.get("command") else None,
        since=str(record["since"]) if record.get("since") else None,
    )


def _command() -> list[str]:
    argv = list(sys.argv) or ["python"]
    argv[0] = Path(argv[0]).name
    return argv


def _temp_dir() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"{_APP}-{uid}"
