"""The study ledger, ``manifest.json``: one entry per (config hash, cycle), rewritten atomically.

Every transition (a run starts, a run ends, the study's status changes) rewrites the
whole file through a temp file + fsync + rename, so a parent killed at any moment
leaves either the previous or the next manifest on disk, never a torn one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llenergymeasure.errors import StudyError
from llenergymeasure.records.files import atomic_write_text, read_json_model
from llenergymeasure.study.models import HeadlineMetrics, StudyPlanLike, StudyStatus, check_plan
from llenergymeasure.study.outcome import RunOutcome
from llenergymeasure.study.signals import interrupts_held

__all__ = [
    "MANIFEST_FILE",
    "MANIFEST_SCHEMA_VERSION",
    "EntryStatus",
    "Ledger",
    "Manifest",
    "ManifestEntry",
    "Placement",
    "remaining",
]

MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA_VERSION = "1"

EntryStatus = Literal[
    "pending", "running", "completed", "failed", "crashed", "timed_out", "interrupted"
]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Placement(_Frozen):
    """Where a run ran on a cluster (the ray executor): the node and the GPUs it was given."""

    node_id: str = Field(description="the Ray node id")
    host: str = Field(description="the node's host name")
    gpu_ids: tuple[str, ...] = Field((), description="as the node numbers them (CUDA order)")
    gpu_uuids: tuple[str, ...] = Field((), description="from NVML; empty when it cannot say")


class ManifestEntry(_Frozen):
    """One planned run: a config (1-based ``index``, ``label``, hash) in one cycle.

    ``placement`` says where the latest attempt ran; None under the local executor.
    """

    index: int
    label: str
    config_hash: str
    cycle: int
    status: EntryStatus = "pending"
    n_attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    error: str | None = None
    log: str | None = None
    result: str | None = None
    metrics: HeadlineMetrics | None = None
    placement: Placement | None = None
    adopted: bool = Field(
        False,
        description="completed by a child whose study process died before recording it; "
        "its folder was validated and adopted on resume",
    )

    @property
    def key(self) -> tuple[str, int]:
        return (self.config_hash, self.cycle)


class Manifest(_Frozen):
    """The whole ledger of one study folder."""

    schema_version: str = MANIFEST_SCHEMA_VERSION
    name: str
    design_hash: str
    status: StudyStatus
    created_at: datetime
    updated_at: datetime
    stop_reason: str | None = Field(
        None, description="why the latest session stopped before every run was done"
    )
    entries: tuple[ManifestEntry, ...]

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read ``manifest.json`` (or the study folder holding it)."""
        file = path / MANIFEST_FILE if path.is_dir() else path
        manifest = read_json_model(cls, file, "manifest", StudyError)
        if manifest is None:
            raise StudyError(
                f"no {MANIFEST_FILE} in {file.parent}",
                hint="--resume needs the folder of a study that was started earlier",
            )
        return manifest

    def save(self, path: Path) -> None:
        """Write atomically (temp file + fsync + rename)."""
        atomic_write_text(path, self.model_dump_json(indent=2) + "\n")


def remaining(manifest: Manifest) -> list[ManifestEntry]:
    """Entries still to run, in planned order; never a completed one.

    A ``running`` entry in a loaded manifest is stale (its parent was killed), so it
    is run again too.
    """
    return [entry for entry in manifest.entries if entry.status != "completed"]


def plan_entries(plan: StudyPlanLike) -> list[ManifestEntry]:
    """Pending entries for the plan's runs, in execution order."""
    hashes = plan.config_hashes
    return [
        ManifestEntry(index=i + 1, label=plan.labels[i], config_hash=hashes[i], cycle=cycle)
        for i, cycle in check_plan(plan)
    ]


def _entry_after(
    entry: ManifestEntry, outcome: RunOutcome, study_dir: Path, placement: Placement | None
) -> ManifestEntry:
    def relative(path: Path | None) -> str | None:
        if path is None:
            return None
        return str(path.relative_to(study_dir)) if path.is_relative_to(study_dir) else str(path)

    return entry.model_copy(
        update={
            "status": outcome.status,
            "ended_at": _now(),
            "duration_s": outcome.duration_s,
            "error": outcome.message,
            "log": relative(outcome.log_path),
            "result": relative(outcome.result_dir),
            "metrics": outcome.metrics,
            "placement": placement,
        }
    )


class Ledger:
    """The manifest of one study folder, saved after every change."""

    def __init__(self, study_dir: Path, manifest: Manifest) -> None:
        self.study_dir = study_dir
        self.manifest = manifest
        self._save()

    @classmethod
    def create(cls, study_dir: Path, plan: StudyPlanLike) -> Ledger:
        now = _now()
        manifest = Manifest(
            name=plan.name,
            design_hash=plan.design_hash,
            status="running",
            created_at=now,
            updated_at=now,
            entries=tuple(plan_entries(plan)),
        )
        return cls(study_dir, manifest)

    @classmethod
    def resume(cls, study_dir: Path, plan: StudyPlanLike) -> Ledger:
        """Reopen a study folder for ``plan``; refuses one started from another design.

        Entries keep their state; runs the plan adds (e.g. more cycles) are appended as
        pending, and entries the plan no longer lists are kept, so that nothing recorded
        is lost.
        """
        old = Manifest.load(study_dir / MANIFEST_FILE)
        if old.design_hash != plan.design_hash:
            raise StudyError(
                "the study file changed since this study started (design hash "
                f"{plan.design_hash} != {old.design_hash}); start a new study instead of --resume",
                hint=f"run it without --resume to start a new study folder next to {study_dir}",
            )
        unknown = {e.config_hash for e in old.entries} - set(plan.config_hashes)
        if unknown:
            raise StudyError(
                f"{study_dir / MANIFEST_FILE} lists configs the study no longer expands to "
                f"({', '.join(sorted(unknown))}); start a new study instead of --resume"
            )
        known = {entry.key: entry for entry in old.entries}
        planned = plan_entries(plan)
        entries = [known.get(entry.key, entry) for entry in planned]
        planned_keys = {entry.key for entry in planned}
        entries += [entry for entry in old.entries if entry.key not in planned_keys]
        return cls(
            study_dir,
            old.model_copy(
                update={"status": "running", "stop_reason": None, "entries": tuple(entries)}
            ),
        )

    @property
    def path(self) -> Path:
        return self.study_dir / MANIFEST_FILE

    def start(self, entry: ManifestEntry) -> ManifestEntry:
        """Mark ``entry`` running (a new attempt)."""
        started = entry.model_copy(
            update={
                "status": "running",
                "n_attempts": entry.n_attempts + 1,
                "started_at": _now(),
                "ended_at": None,
                "duration_s": None,
                "error": None,
                "log": None,
                "result": None,
                "metrics": None,
                "placement": None,
            }
        )
        return self._replace([started])[0]

    def finish(
        self, entry: ManifestEntry, outcome: RunOutcome, *, placement: Placement | None = None
    ) -> ManifestEntry:
        """Record how ``entry``'s run ended (and, on a cluster, where it ran)."""
        return self._replace([_entry_after(entry, outcome, self.study_dir, placement)])[0]

    def interrupt_running(self, message: str = "interrupted before the run finished") -> None:
        """Mark any entry still ``running`` as interrupted (the parent is stopping)."""
        running = [e for e in self.manifest.entries if e.status == "running"]
        if running:
            self._replace(
                [e.model_copy(update={"status": "interrupted", "error": message}) for e in running]
            )

    def replace(self, entries: Iterable[ManifestEntry]) -> None:
        """Put ``entries`` in place of the entries of the same (config hash, cycle)."""
        self._replace(entries)

    def set_status(self, status: StudyStatus, stop_reason: str | None = None) -> None:
        """The study's status, and why the session stopped early (None when it did not)."""
        self.manifest = self.manifest.model_copy(
            update={"status": status, "stop_reason": stop_reason}
        )
        self._save()

    def _replace(self, changed: Iterable[ManifestEntry]) -> list[ManifestEntry]:
        by_key = {entry.key: entry for entry in changed}
        self.manifest = self.manifest.model_copy(
            update={"entries": tuple(by_key.get(e.key, e) for e in self.manifest.entries)}
        )
        self._save()
        return list(by_key.values())

    def _save(self) -> None:
        self.manifest = self.manifest.model_copy(update={"updated_at": _now()})
        with interrupts_held():  # memory and disk agree whenever a Ctrl-C comes
            self.manifest.save(self.path)
