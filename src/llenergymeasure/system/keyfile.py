"""Key-value text files of the host (/proc/cpuinfo, /etc/os-release): one key's value."""

from __future__ import annotations

from pathlib import Path

__all__ = ["key_value"]


def key_value(file: Path, key: str, separator: str, *, quotes: str = "") -> str | None:
    """The first non-empty value of ``key`` in ``file`` (lines ``key<separator>value``).

    Whitespace and any of ``quotes`` around the value are dropped; None when the file
    cannot be read or holds no such value.
    """
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        name, sep, value = line.partition(separator)
        cleaned = value.strip().strip(quotes)
        if sep and name.strip() == key and cleaned:
            return cleaned
    return None
