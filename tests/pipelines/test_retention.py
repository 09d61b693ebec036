"""Retention drops whole partitions by event time, through the library and the CLI."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loglake.pipelines.cli import main
from loglake.pipelines.retention import RetentionError, drop_older_than, partition_end


def _write(dataset: Path, partition: str, rows: int) -> None:
    folder = dataset / partition
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"n": list(range(rows))}), folder / f"part-{rows}.parquet")


@pytest.mark.parametrize(
    "relative, end",
    [
        ("date=2015-05-17/hour=10", datetime(2015, 5, 17, 11, tzinfo=timezone.utc)),
        ("date=2015-05-17/hour=23", datetime(2015, 5, 18, 0, tzinfo=timezone.utc)),
        ("service=web/date=2015-05-17", datetime(2015, 5, 18, tzinfo=timezone.utc)),
        ("service=web", None),
        ("date=garbage", None),
    ],
    ids=["hour", "last-hour", "date-under-a-field", "no-date", "bad-date"],
)
def test_partition_end(relative: str, end: datetime | None) -> None:
    assert partition_end(Path(relative)) == end


def test_only_partitions_that_ended_before_the_cutoff_are_dropped(tmp_path: Path) -> None:
    dataset = tmp_path / "lake" / "access"
    _write(dataset, "date=2015-05-17/hour=10", 3)
    _write(dataset, "date=2015-05-17/hour=11", 4)
    _write(dataset, "date=2015-05-18/hour=00", 5)
    (dataset / "date=2015-05-17" / "hour=11" / ".part-x.parquet.inprogress").write_bytes(b"")  # a writer is busy
    result = drop_older_than(dataset, datetime(2015, 5, 17, 12, tzinfo=timezone.utc))
    assert [p.relative_to(dataset).as_posix() for p in result.dropped] == ["date=2015-05-17/hour=10"]
    assert (result.files, result.undated) == (1, [])
    assert not (dataset / "date=2015-05-17" / "hour=10").exists()
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{dataset}/**/*.parquet')").fetchall()
    assert rows == [(9,)]


def test_a_dataset_without_dates_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "ds", "service=web", 1)
    with pytest.raises(RetentionError, match="no 'date=' partitions"):
        drop_older_than(tmp_path / "ds", datetime.now(timezone.utc))


def test_cli_dry_run_then_drop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = tmp_path / "lake" / "access"
    _write(dataset, "date=2015-05-17/hour=10", 3)
    _write(dataset, "date=2999-01-01/hour=00", 2)
    lake = str(tmp_path / "lake")
    assert main(["retention", "access", "--lake", lake, "--older-than", "30d", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would drop 1 partition(s), 1 file(s)" in out and "date=2015-05-17/hour=10" in out
    assert (dataset / "date=2015-05-17").exists()
    assert main(["retention", "access", "--lake", lake, "--older-than", "30d"]) == 0
    assert "dropped 1 partition(s)" in capsys.readouterr().out
    assert not (dataset / "date=2015-05-17").exists() and (dataset / "date=2999-01-01" / "hour=00").exists()
    assert main(["retention", "nope", "--lake", lake, "--older-than", "30d"]) == 1
    assert "no dataset 'nope'; datasets: access" in capsys.readouterr().err
