"""One flat row per completed run: CSV, Parquet, or a pandas DataFrame.

Columns, in this order (a value that was not measured is empty/null, never 0):

- identity: ``study``, ``run`` (the experiment folder), ``index``, ``cycle``, ``label``,
  ``config_hash``, ``experiment_id``, ``model``, ``engine``, ``engine_version``,
  ``tool_version``, ``methodology_version``, ``mode``, ``started_at``, ``ended_at``,
  ``window_s``;
- the resolved config as dotted names: ``config.task.max_output_tokens``,
  ``config.transformers.batch_size``, ...;
- metrics as dotted names: ``tokens.*``, ``throughput.*``, ``latency.e2e.p50_ms``,
  ``energy.total_j``, ``energy.j_per_output_token``, ``energy.baseline.power_w``,
  ``power.*``, ``warmup.*``, ``flops.*``, ``memory.*``, ``timings.*``, ``compute.*``
  (FLOPs by phase, MFU, MBU), ``phase_energy.*`` (prefill/decode energy, attributed); for
  serving runs ``serving.arrival.*``, ``serving.window.*``, ``serving.latency.ttft.p90_ms``,
  ``serving.goodput.goodput_per_s``, ``serving.j_per_request`` ... (not the per-request list);
- per energy domain ``energy.<domain>.energy_j`` / ``.method`` / ``.source``, per device
  ``power.<device>.mean_w`` ... and ``thermal.<device>.throttled_s`` ...;
- the host: ``environment.hostname``, ``environment.cpu_model``, ``environment.gpus``, ...;
- ``n_warnings`` and ``warnings`` (the warning codes joined with ``; ``).

pyarrow builds the table (CSV and Parquet share its column types); pandas is only
imported by :func:`load`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal

from llenergymeasure.errors import ResultError
from llenergymeasure.records.atomic import atomic_write
from llenergymeasure.results.collection import ResultSet, RunResult, load_runs, open_results

__all__ = [
    "ExportFormat",
    "Scalar",
    "export_rows",
    "export_table",
    "flatten",
    "load",
    "write_export",
    "write_table",
]

ExportFormat = Literal["csv", "parquet"]
Scalar = str | int | float | bool | None

# Sections flattened as they are, in this order; the fields listed are left out
# (long prose, or lists flattened per domain/device below).
_METRIC_SECTIONS: tuple[tuple[str, frozenset[str]], ...] = (
    ("tokens", frozenset()),
    ("throughput", frozenset()),
    ("latency", frozenset({"definition"})),
    ("energy", frozenset({"domains", "sampler_reason", "baseline_note"})),
    ("power", frozenset({"devices", "method"})),
    ("warmup", frozenset()),
    ("flops", frozenset({"method"})),
    ("memory", frozenset()),
    ("timings", frozenset()),
    ("compute", frozenset({"method", "peak_note"})),
    ("phase_energy", frozenset({"note"})),
    # serving runs: rates, window, latencies, goodput, energy per request (not the requests)
    ("serving", frozenset({"requests", "timing"})),
)
_ENVIRONMENT_FIELDS = (
    "hostname",
    "os",
    "kernel",
    "cpu_model",
    "n_cpus_logical",
    "memory_total_mib",
    "python",
    "cuda_version",
    "driver_version",
    "container",
)


def export_rows(results: ResultSet, runs: Sequence[RunResult]) -> list[dict[str, Scalar]]:
    """One flat dict per run; keys are the column names (see the module docstring)."""
    return [_row(results, run) for run in runs]


def _row(results: ResultSet, run: RunResult) -> dict[str, Scalar]:
    r = run.result
    row: dict[str, Scalar] = {
        "study": results.name,
        "run": run.entry.folder.name if run.entry.folder else None,
        "index": run.entry.index,
        "cycle": run.entry.cycle,
        "label": run.entry.label,
        "config_hash": r.measurement_config_hash,
        "experiment_id": r.experiment_id,
        "model": r.model.name,
        "model.resolved_label": r.model.resolved_label,
        "model.n_params": r.model.n_params,
        "model.dtype": r.model.dtype,
        "model.device": r.model.device,
        "engine": r.engine,
        "engine_version": r.engine_version,
        "tool_version": r.tool_version,
        "methodology_version": r.methodology.version,
        "mode": r.mode,
        "started_at": r.window.started_at.isoformat(),
        "ended_at": r.window.ended_at.isoformat(),
        "window_s": r.window.duration_s,
    }
    row.update(flatten(r.config.model_dump(mode="json"), "config."))
    dumped = r.model_dump(mode="json")
    for section, left_out in _METRIC_SECTIONS:
        value = dumped.get(section)
        if isinstance(value, Mapping):
            kept = {k: v for k, v in value.items() if k not in left_out}
            row.update(flatten(kept, f"{section}."))
    for domain in r.energy.domains:
        row[f"energy.{domain.domain}.energy_j"] = domain.energy_j
        row[f"energy.{domain.domain}.method"] = domain.method
        row[f"energy.{domain.domain}.source"] = domain.source
    for device in r.power.devices:
        for name in ("mean_w", "p50_w", "p99_w", "peak_w", "n_samples"):
            row[f"power.{device.device}.{name}"] = getattr(device, name)
    for thermal in r.thermal:
        for name, value in thermal.model_dump(mode="json").items():
            if name != "device":
                row[f"thermal.{thermal.device}.{name}"] = _scalar(value)
    env = r.environment
    for name in _ENVIRONMENT_FIELDS:
        row[f"environment.{name}"] = getattr(env, name)
    row["environment.gpus"] = "; ".join(
        str(a.get("name", "?")) for a in env.accelerators if isinstance(a, Mapping)
    )
    row["n_warnings"] = len(r.warnings)
    row["warnings"] = "; ".join(w.code for w in r.warnings)
    return row


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """Nested mappings as one level of dotted keys; lists become one JSON string."""
    out: dict[str, Scalar] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            out.update(flatten(item, f"{name}."))
        else:
            out[name] = _scalar(item)
    return out


def _scalar(value: Any) -> Scalar:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # lists and empty mappings: one JSON cell, so the row stays flat
    return json.dumps(value, sort_keys=True)


def _columns(rows: Iterable[Mapping[str, Scalar]]) -> list[str]:
    """Every key, ordered by first appearance (identity, config, metrics, warnings last)."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    tail = ["n_warnings", "warnings"]
    return [c for c in seen if c not in tail] + [c for c in tail if c in seen]


def export_table(results: ResultSet) -> Any:
    """The runs of ``results`` as a ``pyarrow.Table`` (one row per completed run)."""
    import pyarrow as pa

    rows = export_rows(results, load_runs(results))
    columns = _columns(rows)
    arrays = {name: _array(pa, [row.get(name) for row in rows]) for name in columns}
    return pa.table(arrays) if arrays else pa.table({"run": pa.array([], pa.string())})


def _array(pa: Any, values: list[Scalar]) -> Any:
    """One typed column: bool, int64, float64 or (for anything mixed) string."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, pa.bool_())
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.array(values, pa.int64())
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if not present:
        return pa.array(values, pa.null())
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def write_table(table: Any, fh: BinaryIO, fmt: ExportFormat) -> None:
    """Write an export table to an open binary file as CSV or Parquet."""
    if fmt == "csv":
        import pyarrow.csv as pa_csv

        pa_csv.write_csv(table, fh)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, fh)
    else:
        raise ResultError(f"unknown export format {fmt!r}", hint="use csv or parquet")


def write_export(path: Path, output: Path, fmt: ExportFormat) -> int:
    """Write the runs at ``path`` to ``output`` (atomically); returns how many rows."""
    table = export_table(open_results(path))
    atomic_write(output, lambda fh: write_table(table, fh, fmt))
    rows: int = table.num_rows
    return rows


def load(path: Path | str) -> Any:
    """The runs of a study or run folder as a ``pandas.DataFrame``, one row per completed run.

    Columns are those of ``llem results export`` (see this module's docstring). Needs
    pandas: ``pip install 'llenergymeasure[pandas]'``.
    """
    try:
        import pandas  # noqa: F401 - only to fail early with the install hint
    except ImportError:
        raise ResultError(
            "llenergymeasure.results.load needs pandas, which is not installed",
            hint="pip install 'llenergymeasure[pandas]'",
        ) from None
    return export_table(open_results(Path(path))).to_pandas()
