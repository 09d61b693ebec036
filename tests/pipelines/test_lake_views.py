"""The views `LakeConnection` and `open_lake` make over a lake's datasets: which files they read, when they read
files written or removed since, and how files of different schemas are matched. Real Parquet files, real DuckDB."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loglake.operators.lake_files import iter_parquet_files, parquet_files
from loglake.pipelines.lake import LakeConnection, open_lake

DAY = "date=2024-05-17"
TOTAL = "SELECT count(*), sum(n) FROM app"


def _write(path: Path, numbers: range, **extra: list[object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"n": list(numbers), "level": ["info"] * len(numbers), **extra}), path)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """`app`: hours 00-02 of 10 records each (n 0…29); `other`: 3 records."""
    root = tmp_path / "lake"
    for hour in range(3):
        _write(root / "app" / DAY / f"hour=0{hour}" / "part-0.parquet", range(hour * 10, hour * 10 + 10))
    _write(root / "other" / DAY / "hour=00" / "part-0.parquet", range(3))
    return root


def _view_sql(connection: LakeConnection, name: str) -> str:
    return str(connection.connection.execute("SELECT sql FROM duckdb_views() WHERE view_name = ?", [name]).fetchall()[0][0])


def _rows(connection: LakeConnection, sql: str) -> list[tuple[object, ...]]:
    result = connection.fetch(sql)
    assert result is not None
    return result.rows


def test_a_query_reads_the_files_added_and_removed_since_the_last_one(lake: Path) -> None:
    connection = LakeConnection.open(lake=lake)
    assert _rows(connection, TOTAL) == [(30, sum(range(30)))]

    _write(lake / "app" / DAY / "hour=03" / "part-0.parquet", range(30, 40))
    assert _rows(connection, TOTAL) == [(40, sum(range(40)))]

    shutil.rmtree(lake / "app" / DAY / "hour=00")  # retention dropped the first hour
    assert _rows(connection, TOTAL) == [(30, sum(range(10, 40)))]


def test_a_query_naming_no_dataset_reads_new_files_through_a_view_of_its_own(lake: Path) -> None:
    connection = LakeConnection.open(lake=lake)
    connection.fetch("CREATE VIEW warnings AS SELECT * FROM app WHERE n >= 25")
    assert _rows(connection, "SELECT count(*) FROM warnings") == [(5,)]

    _write(lake / "app" / DAY / "hour=03" / "part-0.parquet", range(30, 40))

    assert _rows(connection, "SELECT count(*) FROM warnings") == [(15,)]


def test_open_lake_views_glob_the_folders_so_a_plain_connection_sees_new_files(lake: Path) -> None:
    con = open_lake(lake=lake)
    assert con.sql(TOTAL).fetchall() == [(30, sum(range(30)))]
    assert "date=*/hour=*/" in str(con.sql("SELECT sql FROM duckdb_views() WHERE view_name = 'app'").fetchall())

    _write(lake / "app" / DAY / "hour=03" / "part-0.parquet", range(30, 40))

    assert con.sql(TOTAL).fetchall() == [(40, sum(range(40)))]


def test_files_of_one_schema_are_read_without_matching_columns_by_name_from_the_second_query(lake: Path) -> None:
    connection = LakeConnection.open(lake=lake)
    first = _rows(connection, "SELECT n, level, hour FROM app ORDER BY n")
    assert "union_by_name = true" in _view_sql(connection, "app")  # one query would not win back the check

    second = _rows(connection, "SELECT n, level, hour FROM app ORDER BY n")

    assert "union_by_name = false" in _view_sql(connection, "app")
    assert second == first and len(first) == 30 and first[-1] == (29, "info", 2)


def test_a_file_of_another_schema_is_matched_by_name(lake: Path) -> None:
    connection = LakeConnection.open(lake=lake)
    for _ in range(2):
        _rows(connection, TOTAL)
    assert "union_by_name = false" in _view_sql(connection, "app")

    # a new field, and the columns in another order: the records changed shape
    path = lake / "app" / DAY / "hour=03" / "part-0.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"status": [500, 503], "level": ["error", "error"], "n": [30, 31]}), path)
    rows = _rows(connection, "SELECT n, level, status FROM app WHERE n >= 29 ORDER BY n")

    assert rows == [(29, "info", None), (30, "error", 500), (31, "error", 503)]
    assert "union_by_name = true" in _view_sql(connection, "app")
    assert _rows(connection, TOTAL) == [(32, sum(range(32)))]


def test_a_view_reads_the_first_layout_of_a_dataset_whose_partitioning_changed(lake: Path) -> None:
    """Daily files beside hourly ones (`partition_by` was [date]): DuckDB's Hive partitioning reads one layout."""
    _write(lake / "app" / DAY / "part-9.parquet", range(100, 105))

    assert _rows(LakeConnection.open(lake=lake), "SELECT count(*), max(hour) FROM app") == [(30, 2)]


def test_listing_leaves_out_hidden_names_and_linked_folders_and_passes_over_a_vanished_folder(lake: Path, tmp_path: Path) -> None:
    app = lake / "app"
    _write(app / DAY / "hour=00" / ".part-1.parquet.inprogress", range(3))
    _write(app / "_staging" / DAY / "hour=00" / "part-0.parquet", range(3))
    _write(tmp_path / "elsewhere" / "hour=09" / "part-0.parquet", range(3))
    os.symlink(tmp_path / "elsewhere", app / "date=2024-05-18")
    expected = [app / DAY / f"hour=0{hour}" / "part-0.parquet" for hour in range(3)]

    assert parquet_files(app) == expected
    assert parquet_files(app / "missing") == []
    walk = iter_parquet_files(app)
    first = next(walk)
    shutil.rmtree(app / DAY)  # a partition swapped away while the lake is listed
    assert first in expected and list(walk) == []
