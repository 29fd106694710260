"""Atomic file writes, and OS write errors translated once into ResultError."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from llenergymeasure.errors import ResultError

__all__ = ["atomic_write", "atomic_write_text", "write_error"]

# New files get the usual permissions (0666 less the umask), as any editor would make them.
_FILE_MODE = 0o666
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temp file in the same folder, fsync it, then rename over ``path``.

    A reader sees the old file or the new one, never half of one; the folder is
    fsynced too so that the rename survives a crash. The folder itself must not be a
    symbolic link (a planted link could send results elsewhere), and a link sitting at
    ``path`` is replaced, not followed.
    """
    try:
        dir_fd = _open_folder(path.parent)
        try:
            _write_and_rename(path, dir_fd, write)
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:
        raise write_error(path, err) from err


def _open_folder(folder: Path) -> int:
    try:
        return os.open(folder, os.O_RDONLY | _DIRECTORY | _NO_FOLLOW)
    except OSError as err:
        # O_NOFOLLOW on a symbolic link fails with ELOOP (ENOTDIR with O_DIRECTORY on some OSes).
        if err.errno in (errno.ELOOP, errno.ENOTDIR) and folder.is_symlink():
            raise OSError(errno.ELOOP, "the folder is a symbolic link", str(folder)) from err
        raise


def _write_and_rename(path: Path, dir_fd: int, write: Callable[[BinaryIO], object]) -> None:
    tmp_name = f".{path.name}.{secrets.token_hex(6)}.tmp"
    # O_EXCL | O_NOFOLLOW: a file or link planted under the temp name is never written through.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp_name, flags, _FILE_MODE, dir_fd=dir_fd)
    tmp = path.parent / tmp_name
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # noqa: PTH105 - the one rename syscall, patched in fault tests
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see :func:`atomic_write`)."""
    data = text.encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data))


def write_error(path: Path, err: OSError) -> ResultError:
    """One ResultError for an OS error while writing ``path``: what happened, and what to do."""
    reasons = {
        errno.ENOSPC: "the disk is full",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.ELOOP: "the folder is a symbolic link, which results are never written through",
        errno.ENAMETOOLONG: "the path is too long",
        errno.EEXIST: "a file is in the way of a folder",
        errno.ENOTDIR: "a file is in the way of a folder",
    }
    reason = reasons.get(err.errno or 0, err.strerror or str(err))
    return ResultError(
        f"cannot write results to {path}: {reason}",
        hint="free space or choose another folder with --output; files already written are kept",
    )
