"""Hive folders from event times: every record lands in the `date=`/`hour=` of its calendar day and hour, UTC (or
zone-less) times by integer arithmetic, other zones in their local time; checked against Python's calendar."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from loglake.operators.parquet.partitions import split_by_partition

PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _seconds(count: int, years_after_1970: int) -> list[int]:
    """Seconds from the epoch, from 1900 on, with the hours and days around the epoch."""
    rng = random.Random(17)
    edges = [0, -1, 1, -3600, -3601, 3599, -86400, -86401, 86399]
    return edges + [rng.randrange(-70 * 365 * 86400, years_after_1970 * 365 * 86400) for _ in range(count)]


@pytest.mark.parametrize("unit", list(PER_SECOND))
@pytest.mark.parametrize("zone", [None, "UTC", "Asia/Kolkata", "America/St_Johns"])
def test_each_record_goes_to_the_folder_of_its_calendar_day_and_hour(unit: str, zone: str | None) -> None:
    rng = random.Random(5)
    # up to 2200 in UTC (nanoseconds reach 2262); a zone's daylight saving rules are known to Arrow up to 2037
    seconds = _seconds(3000, 230 if zone in (None, "UTC") else 66)
    ticks = [second * PER_SECOND[unit] + rng.randrange(PER_SECOND[unit]) for second in seconds]
    batch = pa.RecordBatch.from_pydict({"timestamp": pa.array(ticks, pa.timestamp(unit, tz=zone)), "row": list(range(len(ticks)))})

    found = {row: folder for folder, part in split_by_partition(batch, ["date", "hour"]) for row in part.column("row").to_pylist()}

    local = ZoneInfo(zone) if zone not in (None, "UTC") else timezone.utc
    expected = {row: f"date={(EPOCH + timedelta(seconds=second)).astimezone(local):%Y-%m-%d}/hour={(EPOCH + timedelta(seconds=second)).astimezone(local):%H}"
                for row, second in enumerate(seconds)}
    assert found == expected
    assert len(set(found.values())) > 2000


def test_a_date_partition_alone_keeps_the_records_order_within_a_day() -> None:
    seconds = [86400 * 3 + 5, -1, 86400 * 3 + 1, 0, -86400]
    batch = pa.RecordBatch.from_pydict({"timestamp": pa.array([s * 10**6 for s in seconds], pa.timestamp("us", tz="UTC")), "row": [0, 1, 2, 3, 4]})

    parts = sorted((folder, part.column("row").to_pylist()) for folder, part in split_by_partition(batch, ["date"]))

    assert parts == [("date=1969-12-31", [1, 4]), ("date=1970-01-01", [3]), ("date=1970-01-04", [0, 2])]
