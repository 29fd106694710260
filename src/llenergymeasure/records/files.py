"""Writing and reading results: atomic files, the folder layout of DESIGN §5, no overwrites.

```
<root>/<run-name>_<UTC timestamp>/
  <NNN>_c<cycle>_<model>-<engine>_<hash8>/
    result.json   timeseries.parquet   config.yaml   environment.json
```
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from llenergymeasure.errors import LlemError, ResultError
from llenergymeasure.records.atomic import atomic_write_text, write_error
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.records.timeseries import TIMESERIES_FILE, read_timeseries, write_timeseries

__all__ = [
    "atomic_write_text",
    "create_unique_dir",
    "experiment_dir_name",
    "load_result",
    "read_json_model",
    "run_dir_name",
    "safe_name",
    "write_experiment",
]

_M = TypeVar("_M", bound=BaseModel)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 80
# Names Windows reserves for devices, with or without an extension (`con`, `NUL.txt`).
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def safe_name(text: str) -> str:
    """A file-name-safe rendering of a label: one path component on every OS.

    Only ASCII letters, digits, ``.``, ``_`` and ``-`` survive (separators, NUL and
    everything else become ``-``); no leading or trailing dot or dash (so never ``.`` or
    ``..``), at most 80 characters, never a Windows device name, never empty.
    """
    cleaned = _UNSAFE.sub("-", text).strip(".-")
    reserved = _WINDOWS_RESERVED.match(cleaned)
    if reserved:  # `nul.txt` -> `nul_.txt`: the device name is what Windows matches
        cleaned = f"{reserved.group(1)}_{reserved.group(2) or ''}"
    return cleaned[:_MAX_NAME].rstrip(".-") or "run"


def create_unique_dir(parent: Path, name: str) -> Path:
    """Create ``parent/name``, or ``name_1``, ``name_2``... if taken; never reuse a folder.

    ``name`` must be one plain path component; anything already at a name (a folder,
    a file, a symbolic link) is skipped, never written into.
    """
    if name in ("", ".", "..") or any(ch in name for ch in "/\\\0") or Path(name).is_absolute():
        raise ResultError(f"refusing a result folder name that is not one path component: {name!r}")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(10_000):
            candidate = parent / (name if attempt == 0 else f"{name}_{attempt}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return candidate
    except OSError as err:
        raise write_error(parent, err) from err
    raise ResultError(f"could not find a free folder name for {name} under {parent}")


def run_dir_name(name: str, at: datetime) -> str:
    """``<name>_<UTC timestamp>``."""
    return f"{safe_name(name)}_{at.astimezone(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"


def experiment_dir_name(result: ExperimentResult, *, index: int, cycle: int) -> str:
    """``<NNN>_c<cycle>_<model>-<engine>_<hash8>``."""
    label = safe_name(f"{result.model.resolved_label}-{result.engine}")
    return f"{index:03d}_c{cycle}_{label}_{result.measurement_config_hash[:8]}"


def write_experiment(
    result: ExperimentResult, parent: Path, *, index: int = 1, cycle: int = 1
) -> Path:
    """Write one experiment's files into a new folder under ``parent``; returns the folder."""
    folder = create_unique_dir(parent, experiment_dir_name(result, index=index, cycle=cycle))
    config = result.config.model_dump(mode="json")
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_text(
        folder / "environment.json", result.environment.model_dump_json(indent=2) + "\n"
    )
    if result.timeseries:
        write_timeseries(result.timeseries, folder / TIMESERIES_FILE)
    # result.json last: its presence marks a complete experiment folder.
    atomic_write_text(folder / "result.json", result.model_dump_json(indent=2) + "\n")
    return folder


def load_result(path: Path) -> ExperimentResult:
    """Read ``result.json`` (or the folder holding it) back into an ExperimentResult."""
    file = path / "result.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        result = ExperimentResult.model_validate(data)
        trace_file = file.parent / TIMESERIES_FILE
        if trace_file.is_file():
            rows = tuple(read_timeseries(trace_file))
            result = result.model_copy(update={"timeseries": rows})
        return result
    except FileNotFoundError:
        raise ResultError(f"no result at {file}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as err:
        raise ResultError(f"unreadable result {file}: {type(err).__name__}") from err


def read_json_model(
    model: type[_M], file: Path, what: str, error: type[LlemError] = ResultError
) -> _M | None:
    """``file`` read as ``model``, or None when there is no such file.

    A file that cannot be read or does not validate raises ``error``, naming ``what`` it
    should have held (``unreadable manifest <file>: ValidationError``).
    """
    try:
        return model.model_validate_json(file.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as err:
        raise error(f"unreadable {what} {file}: {type(err).__name__}") from err
