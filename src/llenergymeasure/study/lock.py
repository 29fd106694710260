"""One process at a time per study folder: a lock held while a study runs.

Two processes resuming the same study would run its missing runs twice. The study
process holds an advisory lock on ``<study_dir>/.llem.lock`` for its whole session;
the operating system releases it when the process ends, however it ends (a SIGKILL
included), so a stale lock never blocks a resume. ``llem results status`` uses the
same lock to tell a running study from a stopped one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from llenergymeasure.errors import StudyError
from llenergymeasure.records.atomic import write_error

__all__ = ["LOCK_FILE", "is_running", "study_lock"]

LOCK_FILE = ".llem.lock"
# A status check holds the lock for an instant; a starting study waits that long.
_WAIT_S = 2.0


@contextlib.contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    """Hold the study folder's lock; StudyError when another process holds it."""
    file = study_dir / LOCK_FILE
    lock = FileLock(str(file))
    try:
        lock.acquire(timeout=_WAIT_S)
    except Timeout:
        raise StudyError(
            f"the study in {study_dir} is running in another process",
            hint=f"wait for it to end, or see its progress with: llem results status {study_dir}",
        ) from None
    except OSError as err:
        raise write_error(file, err) from err
    try:
        yield
    finally:
        lock.release()


def is_running(study_dir: Path) -> bool:
    """True while some process holds the study folder's lock (the study is running)."""
    file = study_dir / LOCK_FILE
    if not file.exists():
        return False
    lock = FileLock(str(file))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:
        return False  # a read-only folder: nobody can be running a study in it
    lock.release()
    return False
