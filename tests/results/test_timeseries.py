"""timeseries.parquet: the §5 columns and types, a lossless round trip, atomic writes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llenergymeasure.errors import ResultError
from llenergymeasure.records.timeseries import (
    TIMESERIES_COLUMNS,
    read_timeseries,
    write_timeseries,
)


def _row(t_s: float, device: str, **readings: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(TIMESERIES_COLUMNS)
    row.update(t_s=t_s, device=device, **readings)
    return row


ROWS = [
    _row(
        0.0,
        "gpu:0",
        power_w=151.5,
        energy_j=12_345.678,
        temperature_c=61.0,
        sm_clock_mhz=1980.0,
        utilisation_pct=97.0,
        memory_used_mib=40_960.5,
        throttle_reasons=0x24,
    ),
    _row(0.0, "process", utilisation_pct=180.0, memory_used_mib=2048.0),
    _row(0.1, "gpu:0", power_w=149.0, energy_j=12_360.8, throttle_reasons=0),
    _row(0.1, "cpu:0", energy_j=None, power_w=None),
]


def test_the_columns_are_the_design_columns() -> None:
    assert TIMESERIES_COLUMNS == (
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


def test_round_trip_keeps_values_and_nulls(tmp_path: Path) -> None:
    path = tmp_path / "timeseries.parquet"
    write_timeseries(ROWS, path)
    assert read_timeseries(path) == ROWS
    back = read_timeseries(path)
    assert back[3]["power_w"] is None and back[1]["throttle_reasons"] is None


def test_columns_are_typed_and_nullable(tmp_path: Path) -> None:
    path = tmp_path / "timeseries.parquet"
    write_timeseries(ROWS, path)
    schema = pq.read_schema(path)
    assert schema.names == list(TIMESERIES_COLUMNS)
    assert schema.field("t_s").type == pa.float64() and not schema.field("t_s").nullable
    assert schema.field("device").type == pa.string() and not schema.field("device").nullable
    assert schema.field("throttle_reasons").type == pa.int64()
    for name in TIMESERIES_COLUMNS[2:-1]:
        assert schema.field(name).type == pa.float64() and schema.field(name).nullable
    assert pq.read_table(path).column("power_w").null_count == 2


def test_an_empty_trace_writes_an_empty_typed_table(tmp_path: Path) -> None:
    path = tmp_path / "timeseries.parquet"
    write_timeseries([], path)
    assert read_timeseries(path) == []
    assert pq.read_schema(path).names == list(TIMESERIES_COLUMNS)


def test_overwrite_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "timeseries.parquet"
    write_timeseries(ROWS, path)
    write_timeseries(ROWS[:1], path)
    assert len(read_timeseries(path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timeseries.parquet"]


def test_a_failed_rename_is_a_result_error_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "timeseries.parquet"
    write_timeseries(ROWS, path)

    def disk_full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(ResultError) as info:
        write_timeseries(ROWS[:1], path)
    monkeypatch.undo()
    assert "disk is full" in info.value.message and str(path) in info.value.message
    assert isinstance(info.value.__cause__, OSError)
    assert len(read_timeseries(path)) == len(ROWS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timeseries.parquet"]


def test_a_missing_folder_is_a_result_error(tmp_path: Path) -> None:
    with pytest.raises(ResultError):
        write_timeseries(ROWS, tmp_path / "no" / "such" / "timeseries.parquet")


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({k: v for k, v in ROWS[0].items() if k != "power_w"}, "missing ['power_w']"),
        ({**ROWS[0], "voltage_v": 1.0}, "unexpected ['voltage_v']"),
        ({**ROWS[0], "device": None}, "'device' may not be null"),
        ({**ROWS[0], "throttle_reasons": 1.5}, "throttle_reasons must be integers"),
        ({**ROWS[0], "power_w": "hot"}, "bad value"),
    ],
)
def test_bad_rows_are_refused(tmp_path: Path, row: dict[str, object], needle: str) -> None:
    path = tmp_path / "timeseries.parquet"
    with pytest.raises(ResultError) as info:
        write_timeseries([row], path)
    assert needle in info.value.message
    assert not path.exists()


def test_reading_a_missing_or_foreign_file_is_a_result_error(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match="no timeseries"):
        read_timeseries(tmp_path / "absent.parquet")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(ResultError, match="unreadable"):
        read_timeseries(garbage)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    with pytest.raises(ResultError, match="expected"):
        read_timeseries(other)
