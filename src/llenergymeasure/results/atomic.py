"""Atomic file writes, and OS write errors translated once into ResultError."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from llenergymeasure.errors import ResultError

__all__ = ["atomic_write", "atomic_write_text", "write_error"]


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temp file in the same folder, fsync it, then rename over ``path``.

    A reader sees the old file or the new one, never half of one; the folder is
    fsynced too so that the rename survives a crash.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)  # noqa: PTH105 - the one rename syscall, patched in fault tests
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:
        raise write_error(path, err) from err


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see :func:`atomic_write`)."""
    data = text.encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data))


def write_error(path: Path, err: OSError) -> ResultError:
    reasons = {
        errno.ENOSPC: "the disk is full",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EDQUOT: "the disk quota is exceeded",
    }
    reason = reasons.get(err.errno or 0, err.strerror or str(err))
    return ResultError(
        f"cannot write results to {path}: {reason}",
        hint="free space or choose another folder with --output; files already written are kept",
    )
