"""Finding and opening result folders: a study, a single run, or one experiment folder.

```
<root>/<study>_<UTC>/            a study: manifest.json, study.yaml, study_result.json,
    <NNN>_c<cycle>_<label>/      and one experiment folder per completed run
<root>/<model>-<engine>_<UTC>/   a single `llem run`: one experiment folder, no manifest
    001_c1_<label>/result.json
```

:func:`open_results` turns any of these paths (or a ``result.json``) into a
:class:`ResultSet`; :func:`discover` lists every set under a root. The study files are
read with small lenient views of their own (``results/views.py``), so that files
written by other versions still open.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from llenergymeasure.errors import ResultError
from llenergymeasure.records.files import load_result, read_json_model
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.results.views import (
    MANIFEST_FILE,
    RESULT_FILE,
    STUDY_RESULT_FILE,
    AggregateView,
    ManifestView,
    StudyView,
    read_header,
    read_result,
)

__all__ = [
    "MANIFEST_FILE",
    "RESULT_FILE",
    "STUDY_RESULT_FILE",
    "AggregateView",
    "ResultSet",
    "RunEntry",
    "RunResult",
    "WarningTally",
    "discover",
    "is_result_set",
    "load_runs",
    "open_results",
    "tally_warnings",
]

_EXPERIMENT_DIR = re.compile(r"^(?P<index>\d+)_c(?P<cycle>\d+)_")
_FAILED = ("failed", "crashed", "timed_out")


@dataclass(frozen=True)
class RunEntry:
    """One planned run of a set: a config in one cycle, and where its files are."""

    index: int
    cycle: int
    label: str
    config_hash: str
    status: str
    folder: Path | None
    error: str | None = None
    started_at: datetime | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed" and self.folder is not None

    @property
    def key(self) -> str:
        """``<index>/c<cycle>``, as the study tables print it."""
        return f"{self.index}/c{self.cycle}"


# Alike config/study.py:SkippedConfig, kept apart because only the shape matches
@dataclass(frozen=True)
class RunResult:
    """A completed run with its result read back."""

    entry: RunEntry
    result: ExperimentResult


@dataclass(frozen=True)
class WarningTally:
    """One warning code across runs: in how many it appeared, with its first run's text."""

    code: str
    n_runs: int
    message: str
    remedy: str


def tally_warnings(runs: Sequence[RunResult]) -> list[WarningTally]:
    """Each warning code once, in order of first appearance, counted once per run."""
    seen: dict[str, WarningTally] = {}
    for run in runs:
        for warning in {w.code: w for w in run.result.warnings}.values():
            first = seen.get(warning.code)
            seen[warning.code] = WarningTally(
                warning.code,
                1 + (first.n_runs if first else 0),
                first.message if first else warning.message,
                first.remedy if first else warning.remedy,
            )
    return list(seen.values())


@dataclass(frozen=True)
class ResultSet:
    """A study folder or a single run: what every ``llem results`` command works on."""

    path: Path
    kind: Literal["study", "run"]
    name: str
    status: str
    created_at: datetime | None
    design_hash: str | None
    entries: tuple[RunEntry, ...]
    study: StudyView | None = None
    stop_reason: str | None = None

    @property
    def completed(self) -> list[RunEntry]:
        return [entry for entry in self.entries if entry.completed]

    @property
    def n_failed(self) -> int:
        return sum(entry.status in _FAILED for entry in self.entries)


def is_result_set(path: Path) -> bool:
    """Whether ``path`` is a study folder, a single-run folder or an experiment folder."""
    if (path / MANIFEST_FILE).is_file() or (path / RESULT_FILE).is_file():
        return True
    return any(True for _ in _experiment_dirs(path))


def open_results(path: Path) -> ResultSet:
    """The result set at ``path``: a study folder, a run folder, an experiment folder or file.

    Raises ResultError when ``path`` holds none of these.
    """
    if path.is_file() and path.name in (RESULT_FILE, MANIFEST_FILE):
        path = path.parent
    if not path.exists():
        raise ResultError(f"no results at {path}", hint="see `llem results list`")
    if (path / MANIFEST_FILE).is_file():
        return _open_study(path)
    if (path / RESULT_FILE).is_file():
        return _single(path.name, path, [path])
    folders = list(_experiment_dirs(path))
    if not folders:
        raise ResultError(
            f"{path} is neither a study folder nor a run folder (no {MANIFEST_FILE} or "
            f"{RESULT_FILE})",
            hint="pass a folder under results/; `llem results list` shows them",
        )
    return _single(path.name, path, folders)


def discover(root: Path) -> list[ResultSet]:
    """Every study and single run directly under ``root`` (or ``root`` itself), newest first.

    A folder whose files cannot be read is skipped, not fatal: one damaged study must
    not hide the others.
    """
    if not root.is_dir():
        raise ResultError(
            f"no results folder at {root}",
            hint="run `llem run` first, or pass the folder: llem results list DIR",
        )
    candidates = [root] if is_result_set(root) else sorted(p for p in root.iterdir() if p.is_dir())
    sets = []
    for folder in candidates:
        if not is_result_set(folder):
            continue
        try:
            sets.append(open_results(folder))
        except ResultError:
            continue
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(sets, key=lambda s: (s.created_at or epoch, s.name), reverse=True)


def load_runs(results: ResultSet, *, traces: bool = False) -> list[RunResult]:
    """Every completed run of ``results`` with its result, in (index, cycle) order.

    With ``traces`` the power/thermal trace rows are read too (``result.timeseries``).
    """
    runs = []
    for entry in sorted(results.completed, key=lambda e: (e.index, e.cycle)):
        assert entry.folder is not None  # completed entries have one
        result = load_result(entry.folder) if traces else read_result(entry.folder)
        runs.append(RunResult(entry, result))
    return runs


def _experiment_dirs(path: Path) -> Iterator[Path]:
    if not path.is_dir():
        return
    for child in sorted(path.iterdir()):
        if _EXPERIMENT_DIR.match(child.name) and (child / RESULT_FILE).is_file():
            yield child


def _single(name: str, path: Path, folders: Sequence[Path]) -> ResultSet:
    entries = []
    created: datetime | None = None
    for folder in folders:
        header = read_header(folder)
        match = _EXPERIMENT_DIR.match(folder.name)
        index, cycle = (int(match["index"]), int(match["cycle"])) if match else (1, 1)
        entries.append(
            RunEntry(
                index=index,
                cycle=cycle,
                label=f"{header.model.name} · {header.engine}",
                config_hash=header.measurement_config_hash,
                status="completed",
                folder=folder,
                started_at=header.window.started_at,
            )
        )
        started = header.window.started_at
        created = started if created is None else min(created, started)
    return ResultSet(
        path=path,
        kind="run",
        name=name,
        status="completed",
        created_at=created,
        design_hash=None,
        entries=tuple(entries),
    )


def _open_study(path: Path) -> ResultSet:
    file = path / MANIFEST_FILE
    try:
        manifest = ManifestView.model_validate_json(file.read_bytes())
    except (OSError, ValidationError) as err:
        raise ResultError(f"unreadable manifest {file}: {type(err).__name__}") from err
    entries = tuple(
        RunEntry(
            index=e.index,
            cycle=e.cycle,
            label=e.label,
            config_hash=e.config_hash,
            status=e.status,
            folder=path / e.result if e.result else None,
            error=e.error,
            started_at=e.started_at,
        )
        for e in manifest.entries
    )
    return ResultSet(
        path=path,
        kind="study",
        name=manifest.name,
        status=manifest.status,
        created_at=manifest.created_at,
        design_hash=manifest.design_hash,
        entries=entries,
        study=_read_study(path / STUDY_RESULT_FILE),
        stop_reason=manifest.stop_reason,
    )


def _read_study(file: Path) -> StudyView | None:
    """``study_result.json``, or None while the study has not written it yet."""
    return read_json_model(StudyView, file, "study result")
