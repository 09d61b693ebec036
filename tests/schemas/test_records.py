"""The record model: level normalisation, event-time conforming and defaulting."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pytest

from loglake.schemas.records import (
    TIMESTAMP_DEFAULTED_COLUMN,
    TIMESTAMP_RAW_COLUMN,
    TIMESTAMP_TYPE,
    conform_core_columns,
    fill_missing_timestamps,
    normalize_level,
)
from tests.support import APACHE_LOG


@pytest.mark.parametrize(
    "raw, level",
    [("WARNING", "warn"), ("Warn", "warn"), (" warn ", "warn"), ("ERR", "error"), ("Error", "error"), ("CRIT", "critical"),
     ("informational", "info"), ("DEBUG", "debug"), ("emerg", "emergency"), ("Verbose", "verbose"), (None, None)],
    ids=lambda v: repr(v),
)
def test_levels_are_normalised(raw: str | None, level: str | None) -> None:
    assert normalize_level(raw) == level


def test_conform_parses_iso_timestamps_to_utc_microseconds() -> None:
    batch = pa.RecordBatch.from_pydict({
        "timestamp": ["2015-05-17T10:05:03Z", "2015-05-17T12:05:03.5+02:00", "2015-05-17 10:05:03", "yesterday", None, "17/May/2015:12:05:03 +0200"],
        "level": ["WARNING", "Info", "err", "x", None, "notice"],
    })
    out = conform_core_columns(batch)
    assert out.schema.field("timestamp").type == TIMESTAMP_TYPE
    stamps = out.column("timestamp").to_pylist()
    assert stamps[0] == datetime(2015, 5, 17, 10, 5, 3, tzinfo=timezone.utc)
    assert stamps[1] == datetime(2015, 5, 17, 10, 5, 3, 500000, tzinfo=timezone.utc)
    assert stamps[2] == datetime(2015, 5, 17, 10, 5, 3, tzinfo=timezone.utc)
    assert stamps[3:] == [None, None, datetime(2015, 5, 17, 10, 5, 3, tzinfo=timezone.utc)]
    assert out.column(TIMESTAMP_RAW_COLUMN).to_pylist() == [None, None, None, "yesterday", None, None]
    assert out.column("level").to_pylist() == ["warn", "info", "error", "x", None, "notice"]
    assert conform_core_columns(out) is out or conform_core_columns(out).equals(out)


def test_conform_reads_the_real_access_log_times_whichever_form_comes_first() -> None:
    stamps = [line.split("[", 1)[1].split("]", 1)[0] for line in APACHE_LOG.read_text(encoding="utf-8").splitlines()]
    expected = [datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z").astimezone(timezone.utc) for stamp in stamps]
    iso, iso_time = "2015-05-17T10:05:03Z", datetime(2015, 5, 17, 10, 5, 3, tzinfo=timezone.utc)
    for column, times in (
        ([None, *stamps], [None, *expected]),
        ([iso, *stamps], [iso_time, *expected]),  # the first value casts as ISO 8601, the rest do not
        ([*stamps, iso], [*expected, iso_time]),  # the first value does not: no cast of the whole column is tried
    ):
        out = conform_core_columns(pa.RecordBatch.from_pydict({"timestamp": column}))
        assert out.column("timestamp").to_pylist() == times
        assert TIMESTAMP_RAW_COLUMN not in out.schema.names


def test_epoch_typed_timestamps_keep_their_instant() -> None:
    naive = pa.array([datetime(2020, 1, 1, 12)], pa.timestamp("s"))
    out = conform_core_columns(pa.RecordBatch.from_arrays([naive], names=["timestamp"]))
    assert out.column("timestamp").to_pylist() == [datetime(2020, 1, 1, 12, tzinfo=timezone.utc)]


def test_missing_event_time_gets_ingest_time_and_a_flag() -> None:
    ingest = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    batch = pa.RecordBatch.from_pydict({"timestamp": ["2015-05-17T10:05:03Z", None], "message": ["a", "b"]})
    out = fill_missing_timestamps(batch, ingest)
    assert out.column("timestamp").to_pylist() == [datetime(2015, 5, 17, 10, 5, 3, tzinfo=timezone.utc), ingest]
    assert out.column(TIMESTAMP_DEFAULTED_COLUMN).to_pylist() == [False, True]
    no_column = fill_missing_timestamps(pa.RecordBatch.from_pydict({"message": ["a"]}), ingest)
    assert no_column.column("timestamp").to_pylist() == [ingest]
    assert no_column.column(TIMESTAMP_DEFAULTED_COLUMN).to_pylist() == [True]
    complete = fill_missing_timestamps(batch.slice(0, 1), ingest)
    assert TIMESTAMP_DEFAULTED_COLUMN not in complete.schema.names
