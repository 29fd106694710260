"""``timeseries.parquet``: the power/thermal trace, one row per sample per device (DESIGN §5).

Columns, in this order and with these types (every reading but ``t_s`` and
``device`` may be null, never a made-up 0)::

    t_s               float64   seconds since the trace started
    device            string    "gpu:0", "cpu:0", "process", ...
    power_w           float64
    energy_j          float64   the device's cumulative counter (only differences mean anything)
    temperature_c     float64
    sm_clock_mhz      float64
    utilisation_pct   float64
    memory_used_mib   float64
    throttle_reasons  int64     NVML clock-event reason bits

pyarrow is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from llenergymeasure.errors import ResultError
from llenergymeasure.records.atomic import atomic_write

__all__ = [
    "POWER_CAP_BIT",
    "THROTTLE_BITS",
    "THROTTLE_MASK",
    "TIMESERIES_COLUMNS",
    "TIMESERIES_FILE",
    "read_timeseries",
    "write_timeseries",
]

# The NVML clock-event reason bits (``throttle_reasons``) that mean throttling. GPU idle
# (0x1), application clocks (0x2), sync boost (0x10) and display clock (0x100) do not, nor
# does SW power cap (0x4): a GPU at its power limit shows it through most of a full load
# (an H200 in 830 of 866 samples at 685 W of 700 W), which is normal operation.
THROTTLE_BITS: Mapping[str, int] = MappingProxyType(
    {
        "hw_slowdown": 0x8,
        "sw_thermal_slowdown": 0x20,
        "hw_thermal_slowdown": 0x40,
        "hw_power_brake_slowdown": 0x80,
    }
)
THROTTLE_MASK = sum(THROTTLE_BITS.values())
POWER_CAP_BIT = 0x4

TIMESERIES_FILE = "timeseries.parquet"
TIMESERIES_COLUMNS: tuple[str, ...] = (
    "t_s",
    "device",
    "power_w",
    "energy_j",
    "temperature_c",
    "sm_clock_mhz",
    "utilisation_pct",
    "memory_used_mib",
    "throttle_reasons",
)
_REQUIRED = frozenset({"t_s", "device"})


def _schema() -> Any:
    import pyarrow as pa

    types = {"device": pa.string(), "throttle_reasons": pa.int64()}
    return pa.schema(
        [
            pa.field(name, types.get(name, pa.float64()), nullable=name not in _REQUIRED)
            for name in TIMESERIES_COLUMNS
        ]
    )


def write_timeseries(rows: Iterable[Mapping[str, object]], path: Path) -> None:
    """Write ``rows`` (each holding exactly the §5 columns) to ``path``, atomically.

    The table goes to a temp file in the same folder, is fsynced, then renamed
    over ``path``; no temp file is left behind on failure. A row with missing or
    extra columns, or a value of the wrong type, raises :class:`ResultError`, as
    does any OS error (full disk, read-only folder, ...).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    expected = set(TIMESERIES_COLUMNS)
    columns: dict[str, list[object]] = {name: [] for name in TIMESERIES_COLUMNS}
    for index, row in enumerate(rows):
        if row.keys() != expected:
            missing = sorted(expected - row.keys())
            extra = sorted(set(row.keys()) - expected)
            raise ResultError(
                f"timeseries row {index} does not match the columns: "
                f"missing {missing}, unexpected {extra}"
            )
        for name in TIMESERIES_COLUMNS:
            columns[name].append(row[name])
    for name in _REQUIRED:
        if any(value is None for value in columns[name]):
            raise ResultError(f"timeseries for {path}: column {name!r} may not be null")
    # pyarrow would silently truncate 1.5 to 1 in an int64 column: check the bits are ints.
    if any(
        value is not None and (isinstance(value, bool) or not isinstance(value, int))
        for value in columns["throttle_reasons"]
    ):
        raise ResultError(f"timeseries for {path}: throttle_reasons must be integers or null")
    schema = _schema()
    try:
        table = pa.Table.from_pydict(columns, schema=schema)
        table.validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as err:
        raise ResultError(f"timeseries for {path} has a bad value: {err}") from err
    atomic_write(path, lambda fh: pq.write_table(table, fh))


def read_timeseries(path: Path) -> list[dict[str, object]]:
    """Read ``timeseries.parquet`` back: one dict per row, keys in column order, nulls as None."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise ResultError(f"no timeseries at {path}") from None
    except (OSError, pa.ArrowException) as err:
        raise ResultError(f"unreadable timeseries {path}: {type(err).__name__}") from err
    if tuple(table.column_names) != TIMESERIES_COLUMNS:
        raise ResultError(
            f"timeseries {path} has columns {table.column_names}, "
            f"expected {list(TIMESERIES_COLUMNS)}"
        )
    rows: list[dict[str, object]] = table.to_pylist()
    return rows
