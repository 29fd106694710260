"""Resume adopts what a crash left: run folders the manifest never heard of.

A study process killed at the wrong moment leaves a run folder the manifest does not
point at: the child wrote its folder, then the parent died before recording it (the
entry still says ``running``), or the child was killed half-way through writing.
Before a resumed study runs anything, every experiment folder of the study that no
manifest entry points at is looked at:

- complete (``result.json`` and the files written before it, a result that validates and
  carries the run's config hash) and its run not yet completed: **adopted**, the entry
  becomes ``completed`` with ``adopted: true``, and the run is not redone;
- anything else (partial files, a result of another config, a second folder for a run
  already completed): **moved aside** to ``_incomplete/``, and its run, if not completed,
  is redone.

So every (config, cycle) ends with exactly one folder in the study, and nothing is
deleted. Each decision is appended to the run's log.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from llenergymeasure.errors import ResultError
from llenergymeasure.records.files import load_result
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.study.isolation import append_log, log_path
from llenergymeasure.study.manifest import Ledger, ManifestEntry
from llenergymeasure.study.models import HeadlineMetrics

__all__ = ["INCOMPLETE_DIR", "recover"]

INCOMPLETE_DIR = "_incomplete"
_EXPERIMENT_DIR = re.compile(r"^(?P<index>\d+)_c(?P<cycle>\d+)_.*_(?P<hash8>[0-9a-f]{8})(_\d+)?$")
# Written before result.json, which is written last (records/files.py, the ray driver).
_WRITTEN_FIRST = ("config.yaml", "environment.json")


def recover(ledger: Ledger) -> list[str]:
    """Adopt or set aside the study's unrecorded run folders; one line per folder handled."""
    study_dir = ledger.study_dir
    entries = {(e.index, e.cycle): e for e in ledger.manifest.entries}
    referenced = {e.result for e in ledger.manifest.entries if e.result}
    found: dict[tuple[int, int], list[tuple[Path, ExperimentResult | str]]] = {}
    for folder in sorted(p for p in study_dir.iterdir() if p.is_dir()):
        match = _EXPERIMENT_DIR.match(folder.name)
        if match is None or folder.name in referenced:
            continue
        key = (int(match["index"]), int(match["cycle"]))
        checked = _check(folder, entries.get(key), match["hash8"])
        found.setdefault(key, []).append((folder, checked))
    notes: list[str] = []
    adopted: list[ManifestEntry] = []
    for key, folders in found.items():
        entry = entries.get(key)
        keep = _best(folders) if entry is not None and entry.status != "completed" else None
        for folder, checked in folders:
            if keep is not None and folder == keep[0] and isinstance(checked, ExperimentResult):
                assert entry is not None  # keep is only chosen for a known entry
                adopted.append(_adopt(entry, folder, checked))
                text = f"adopted {folder.name}, complete but unrecorded"
                notes.append(_note(study_dir, key, text))
            else:
                reason = checked if isinstance(checked, str) else "a second folder for this run"
                moved = _set_aside(folder)
                notes.append(_note(study_dir, key, f"moved {folder.name} to {moved} ({reason})"))
    if adopted:
        ledger.replace(adopted)
    return notes


def _check(folder: Path, entry: ManifestEntry | None, hash8: str) -> ExperimentResult | str:
    """The folder's result when it is complete and belongs to ``entry``, else why not."""
    if entry is None:
        return "no run of this study has its number and cycle"
    if not entry.config_hash.startswith(hash8):
        return "its name carries another config's hash"
    if not (folder / "result.json").is_file():
        return "partial: no result.json"
    missing = [name for name in _WRITTEN_FIRST if not (folder / name).is_file()]
    if missing:
        return f"partial: no {', '.join(missing)}"
    try:
        result = load_result(folder)
    except ResultError as err:
        return f"unreadable: {err.message}"
    if result.measurement_config_hash != entry.config_hash:
        return "its result is of another config"
    return result


def _best(
    folders: Sequence[tuple[Path, ExperimentResult | str]],
) -> tuple[Path, ExperimentResult] | None:
    """The complete folder whose window ended last (the latest attempt), if any is complete."""
    complete = [(f, r) for f, r in folders if isinstance(r, ExperimentResult)]
    return max(complete, key=lambda fr: fr[1].window.ended_at, default=None)


def _adopt(entry: ManifestEntry, folder: Path, result: ExperimentResult) -> ManifestEntry:
    written_at = datetime.fromtimestamp((folder / "result.json").stat().st_mtime, timezone.utc)
    log = log_path(folder.parent, entry.index, entry.cycle)
    return entry.model_copy(
        update={
            "status": "completed",
            "ended_at": written_at,
            "duration_s": result.timings.total_s,
            "error": None,
            "log": str(log.relative_to(folder.parent)) if log.is_file() else None,
            "result": folder.name,
            "metrics": HeadlineMetrics.of(result),
            "adopted": True,
        }
    )


def _set_aside(folder: Path) -> str:
    """Move ``folder`` into ``_incomplete/`` under a free name; its new relative path."""
    aside = folder.parent / INCOMPLETE_DIR
    aside.mkdir(exist_ok=True)
    name, n = folder.name, 0
    while (aside / name).exists() or (aside / name).is_symlink():
        n += 1
        name = f"{folder.name}_{n}"
    folder.rename(aside / name)
    return f"{INCOMPLETE_DIR}/{name}"


def _note(study_dir: Path, key: tuple[int, int], text: str) -> str:
    """Append ``text`` to the run's log, and return it as a line for the user."""
    index, cycle = key
    line = f"resume: run {index}/c{cycle}: {text}"
    with contextlib.suppress(OSError):  # the note is for the record; the move stands anyway
        append_log(log_path(study_dir, index, cycle), f"--- {line}\n".encode())
    return line
