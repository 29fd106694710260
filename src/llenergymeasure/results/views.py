"""Lenient views of the files a study and a run leave: only the fields the readers use.

The study files are read with small views of their own (unknown fields ignored), so
that files written by other versions still list and show, and this layer needs no
model of the writer's.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from llenergymeasure.errors import ResultError
from llenergymeasure.records.files import read_json_model
from llenergymeasure.records.result import ExperimentResult

__all__ = [
    "MANIFEST_FILE",
    "RESULT_FILE",
    "STUDY_RESULT_FILE",
    "AggregateView",
    "ConfigAggregateView",
    "EntryView",
    "ManifestView",
    "ResultHeader",
    "StudyView",
    "read_header",
    "read_result",
]

RESULT_FILE = "result.json"
MANIFEST_FILE = "manifest.json"
STUDY_RESULT_FILE = "study_result.json"


class _Lenient(BaseModel):
    # Views of files another layer owns: read the fields used here, ignore the rest.
    model_config = ConfigDict(extra="ignore", frozen=True)


class EntryView(_Lenient):
    """One manifest entry."""

    index: int
    label: str
    config_hash: str
    cycle: int
    status: str
    started_at: datetime | None = None
    error: str | None = None
    result: str | None = None


class ManifestView(_Lenient):
    """The manifest of a study."""

    name: str
    design_hash: str
    status: str
    created_at: datetime
    stop_reason: str | None = None
    entries: tuple[EntryView, ...]


# Alike study/manifest.py:ManifestEntry, kept apart because only the field shape matches
class AggregateView(_Lenient):
    """One metric of one config across cycles, as ``study_result.json`` holds it."""

    n: int = 0
    mean: float | None = None
    std: float | None = None
    ci95_half_width: float | None = None
    ci95_low: float | None = None
    ci95_high: float | None = None


class ConfigAggregateView(_Lenient):
    index: int
    label: str
    config_hash: str
    n_completed: int
    j_per_output_token: AggregateView
    output_tokens_per_s: AggregateView


# Alike EntryView, kept apart because each lenient view reads another file
class _ProtocolView(_Lenient):
    n_cycles: int
    experiment_order: str
    experiment_gap_s: float | None = None
    cycle_gap_s: float | None = None
    experiment_timeout_s: float | None = None


class _SummaryView(_Lenient):
    n_planned: int
    n_completed: int
    n_failed: int
    wall_time_s: float | None = None
    total_energy_j: float | None = None


class StudyView(_Lenient):
    """What the report and tables use of ``study_result.json``."""

    status: str
    protocol: _ProtocolView
    summary: _SummaryView
    aggregates: tuple[ConfigAggregateView, ...] = ()


class _Identity(_Lenient):
    name: str


class _Window(_Lenient):
    started_at: datetime


class _Energy(_Lenient):
    total_j: float | None = None


class ResultHeader(_Lenient):
    """The few fields of a ``result.json`` that a listing needs (fast to read)."""

    experiment_id: str
    measurement_config_hash: str
    engine: str
    model: _Identity
    window: _Window
    energy: _Energy


def read_header(folder: Path) -> ResultHeader:
    """The listing fields of ``folder/result.json``."""
    file = folder / RESULT_FILE
    header = read_json_model(ResultHeader, file, "result")
    if header is None:
        raise ResultError(f"no result at {file}")
    return header


def read_result(folder: Path) -> ExperimentResult:
    """``folder/result.json`` without its trace (the trace is only needed for plots)."""
    file = folder / RESULT_FILE
    result = read_json_model(ExperimentResult, file, "result")
    if result is None:
        raise ResultError(
            f"no result at {file}",
            hint="the manifest lists this run as completed; was its folder moved or deleted?",
        )
    return result
