"""The files of Ray runs, written by the driver into the study folder, and shared CPU energy.

The driver is the only writer of the study folder: a worker's files arrive as bytes and
are written here atomically, ``result.json`` last. Runs whose windows overlapped on one
node share its CPU packages and memory, so their package-wide CPU and DRAM readings are
flagged ``shared`` (``energy.details.shared`` and a ``shared_cpu_energy`` warning), never
attributed silently. The per-process CPU estimate is not affected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from llenergymeasure.errors import StudyError
from llenergymeasure.records.atomic import atomic_write, atomic_write_text
from llenergymeasure.records.files import create_unique_dir
from llenergymeasure.records.result import ExperimentResult, MeasurementWarning
from llenergymeasure.study.manifest import Placement

__all__ = ["SHARED_CPU_WARNING", "SharedCpu", "write_folder"]

SHARED_CPU_WARNING = "shared_cpu_energy"
# Energy sources that attribute CPU energy to the measuring process alone; every other
# source of a cpu/dram domain reads a whole package.
_PER_PROCESS_SOURCES = frozenset({"estimate"})
_PACKAGE_KINDS = ("cpu", "dram")


def write_folder(study_dir: Path, folder: Path, files: Mapping[str, bytes]) -> Path:
    """Write the files under ``folder`` (a scratch-relative path) into a new study sub-folder."""
    target = create_unique_dir(study_dir, folder.name)
    prefix = folder.as_posix() + "/"
    names = [name.removeprefix(prefix) for name in files if name.startswith(prefix)]
    # result.json last: its presence marks a complete experiment folder.
    for name in sorted(names, key=lambda n: (n == "result.json", n)):
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise StudyError(f"a Ray worker sent a file outside its result folder: {name}")
        path = target.joinpath(*relative.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_bytes(path, files[prefix + name])
    return target


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


@dataclass(frozen=True)
class _Window:
    started_at: datetime
    ended_at: datetime
    folder: Path
    domains: tuple[str, ...]  # the package-wide cpu/dram domains it measured


class SharedCpu:
    """Finds runs whose windows overlapped on one node and flags their package-wide readings.

    Each overlapping pair is found when the later of the two is added: by then the
    earlier one's window is known. The windows are on the node's clock, so only windows
    of the same node are compared.
    """

    def __init__(self) -> None:
        self._by_node: dict[str, list[_Window]] = {}

    def add(self, placement: Placement, folder: Path) -> None:
        """A run written into ``folder``: flag it and the runs its window overlapped."""
        result = ExperimentResult.model_validate_json((folder / "result.json").read_bytes())
        window = _Window(
            result.window.started_at,
            result.window.ended_at,
            folder,
            tuple(
                d.domain
                for d in result.energy.domains
                if d.domain.split(":")[0] in _PACKAGE_KINDS and d.source not in _PER_PROCESS_SOURCES
            ),
        )
        seen = self._by_node.setdefault(placement.node_id, [])
        overlapping = [
            w for w in seen if w.started_at < window.ended_at and window.started_at < w.ended_at
        ]
        seen.append(window)
        if overlapping and window.domains:
            _flag_shared(window, [w.folder.name for w in overlapping])
        for other in overlapping:
            if other.domains:
                _flag_shared(other, [folder.name])


def _flag_shared(window: _Window, others: Sequence[str]) -> None:
    """Mark the run's package-wide readings ``shared`` with the runs it overlapped."""
    file = window.folder / "result.json"
    result = ExperimentResult.model_validate_json(file.read_bytes())
    details = dict(result.energy.details)
    earlier = details.get("shared", {}).get("runs", []) if "shared" in details else []
    details["shared"] = {"domains": list(window.domains), "runs": sorted({*earlier, *others})}
    warnings = result.warnings
    if not any(w.code == SHARED_CPU_WARNING for w in warnings):
        warnings = (
            *warnings,
            MeasurementWarning(
                code=SHARED_CPU_WARNING,
                message=(
                    f"{', '.join(window.domains)} energy was read for the whole package while "
                    "other runs of this study measured on the same node "
                    "(energy.details.shared.runs); it is not this run's alone"
                ),
                remedy="compare GPU energy, or give each node one run at a time "
                "(start its Ray with --num-cpus 1) when CPU energy matters",
            ),
        )
    energy = result.energy.model_copy(update={"details": details})
    flagged = result.model_copy(update={"energy": energy, "warnings": warnings})
    atomic_write_text(file, flagged.model_dump_json(indent=2) + "\n")
