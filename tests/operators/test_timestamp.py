"""The `timestamp` stage: every named format, strptime patterns, zones, and values that match no format."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pytest

from loglake.schemas.records import TIMESTAMP_TYPE
from tests.support import APACHE_LOG, batch_of, build_stage, only_spec_issue

UTC = timezone.utc
WHEN = datetime(2015, 5, 17, 10, 5, 3, tzinfo=UTC)
THIS_YEAR = datetime.now(UTC).year


def _parsed(snippet: str, values: list[Any]) -> list[datetime | None]:
    out = build_stage(f"{{type: timestamp, field: t, {snippet}}}").process(batch_of(t=values))
    assert out.main.schema.field("timestamp").type == TIMESTAMP_TYPE
    return out.main.column("timestamp").to_pylist()


@pytest.mark.parametrize(
    "snippet, value, expected",
    [
        ("formats: [APACHE]", "17/May/2015:10:05:03 +0000", WHEN),
        ("formats: [APACHE]", "17/May/2015:12:05:03 +0200", WHEN),
        ("formats: [ISO8601]", "2015-05-17T10:05:03Z", WHEN),
        ("formats: [ISO8601]", "2015-05-17T10:05:03.250+00:00", WHEN.replace(microsecond=250000)),
        ("formats: [ISO8601]", "2015-05-17 10:05:03", WHEN),
        ("formats: [UNIX]", "1431857103", WHEN),
        ("formats: [UNIX]", "1431857103.5", WHEN.replace(microsecond=500000)),
        ("formats: [UNIX_MS]", "1431857103250", WHEN.replace(microsecond=250000)),
        ("formats: [UNIX_US]", "1431857103000001", WHEN.replace(microsecond=1)),
        ("formats: [UNIX_NS]", "1431857103000001000", WHEN.replace(microsecond=1)),
        ("formats: [SYSLOG]", "May 17 10:05:03", WHEN.replace(year=THIS_YEAR)),
        ("formats: [SYSLOG]", "May  7 10:05:03", WHEN.replace(year=THIS_YEAR, day=7)),
        ("formats: ['%Y-%m-%d %H:%M:%S']", "2015-05-17 10:05:03", WHEN),
        ("formats: ['%Y-%m-%d %H:%M:%S.%f']", "2015-05-17 10:05:03.000042", WHEN.replace(microsecond=42)),
        ("formats: ['%d/%m/%Y %H:%M']", "17/05/2015 10:05", WHEN.replace(second=0)),
        ("formats: [ISO8601], timezone: Europe/Paris", "2015-05-17T12:05:03", WHEN),
        ("formats: [ISO8601], timezone: Europe/Paris", "2015-05-17T10:05:03Z", WHEN),
        ("formats: ['%Y-%m-%d %H:%M:%S'], timezone: America/New_York", "2015-05-17 06:05:03", WHEN),
        ("formats: [SYSLOG], timezone: Asia/Tokyo", "May 17 19:05:03", WHEN.replace(year=THIS_YEAR)),
        ("formats: [APACHE, ISO8601], timezone: Asia/Tokyo", "2015-05-17T19:05:03", WHEN),
    ],
    ids=[
        "apache-utc", "apache-offset", "iso-z", "iso-fraction-offset", "iso-space-naive", "unix-int-text",
        "unix-float-text", "unix-ms", "unix-us", "unix-ns", "syslog", "syslog-space-padded-day", "strptime",
        "strptime-fraction", "strptime-day-first", "iso-naive-paris", "iso-offset-ignores-zone", "strptime-new-york",
        "syslog-tokyo", "second-format-tokyo",
    ],
)
def test_formats_and_zones(snippet: str, value: str, expected: datetime) -> None:
    assert _parsed(snippet, [value]) == [expected]


@pytest.mark.parametrize(
    "column, fmt, expected",
    [
        (pa.array([1431857103, None], pa.int64()), "UNIX", [WHEN, None]),
        (pa.array([1431857103.25], pa.float64()), "UNIX", [WHEN.replace(microsecond=250000)]),
        (pa.array([1431857103250], pa.int64()), "UNIX_MS", [WHEN.replace(microsecond=250000)]),
        (pa.array([datetime(2015, 5, 17, 12, 5, 3)], pa.timestamp("s")), "UNIX", [datetime(2015, 5, 17, 12, 5, 3, tzinfo=UTC)]),
    ],
    ids=["int-seconds-and-null", "float-seconds", "int-millis", "naive-timestamp-is-utc"],
)
def test_typed_columns(column: pa.Array, fmt: str, expected: list[datetime | None]) -> None:
    out = build_stage(f"{{type: timestamp, field: t, formats: [{fmt}], target: ts}}").process(pa.RecordBatch.from_arrays([column], ["t"]))
    assert out.main.column("ts").to_pylist() == expected


def test_first_matching_format_wins_and_nulls_stay_null() -> None:
    values = ["1431857103", "17/May/2015:10:05:03 +0000", None, "2015-05-17T10:05:03+00:00"]
    assert _parsed("formats: [APACHE, UNIX, ISO8601]", values) == [WHEN, WHEN, None, WHEN]


def test_real_apache_lines() -> None:
    lines = APACHE_LOG.read_text().splitlines()[:2000]
    stamps = [re.search(r"\[([^\]]+)\]", line).group(1) for line in lines]  # type: ignore[union-attr]
    parsed = _parsed("formats: [APACHE]", stamps)
    expected = [datetime.strptime(s, "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC) for s in stamps]
    assert parsed == expected
    assert parsed[0] == WHEN


BAD = batch_of(line=["a", "b", "c"], t=["17/May/2015:10:05:03 +0000", "17/Mayy/2015", "2015-02-30T10:00:00"])


@pytest.mark.parametrize(
    "on_error, lines, stamps",
    [("route", ["a"], [WHEN]), ("keep", ["a", "b", "c"], [WHEN, None, None]), ("discard", ["a"], [WHEN])],
    ids=["route", "keep", "discard"],
)
def test_values_matching_no_format_follow_on_error(on_error: str, lines: list[str], stamps: list[Any]) -> None:
    out = build_stage(f"{{type: timestamp, field: t, formats: [APACHE, ISO8601], on_error: {on_error}}}", name="when").process(BAD)
    assert out.main.column("line").to_pylist() == lines
    assert out.main.column("timestamp").to_pylist() == stamps
    assert out.discarded == (2 if on_error == "discard" else 0)
    errors = [
        "t: '17/Mayy/2015' matches none of the formats APACHE, ISO8601",
        "t: '2015-02-30T10:00:00' matches none of the formats APACHE, ISO8601",
    ]
    if on_error == "route":
        dropped = out.extra["dropped"]
        assert dropped.column("_error").to_pylist() == errors
        assert dropped.column("t").to_pylist() == ["17/Mayy/2015", "2015-02-30T10:00:00"]
        assert dropped.column("_error_node").to_pylist() == ["when", "when"]
    if on_error == "keep":
        assert out.main.column("_error").to_pylist() == [None, *errors]


def test_invalid_calendar_date_is_not_rolled_over() -> None:
    out = build_stage("{type: timestamp, field: t, formats: ['%Y-%m-%d']}").process(batch_of(t=["2015-02-30", "2015-02-28"]))
    assert out.main.column("timestamp").to_pylist() == [datetime(2015, 2, 28, tzinfo=UTC)]
    assert out.extra["dropped"].column("t").to_pylist() == ["2015-02-30"]


def test_missing_field_passes_the_batch_unchanged() -> None:
    batch = batch_of(message=["x"])
    assert build_stage("{type: timestamp, field: t, formats: [ISO8601]}").process(batch).main.equals(batch)


@pytest.mark.parametrize(
    "snippet, path, reason",
    [
        ("{type: timestamp, field: t, formats: [ISO8601], timezone: Mars/Base}", ("timezone",), "unknown time zone 'Mars/Base'"),
        ("{type: timestamp, field: t, formats: [ISO8601, EPOCH]}", ("formats", 1), "unknown format 'EPOCH'"),
        ("{type: timestamp, field: t, formats: []}", ("formats",), "at least 1 item"),
        ("{type: timestamp, formats: [ISO8601]}", ("field",), "missing required key 'field'"),
    ],
    ids=["bad-zone", "unknown-name", "no-formats", "no-field"],
)
def test_bad_config_is_a_spec_error(snippet: str, path: tuple[Any, ...], reason: str) -> None:
    issue = only_spec_issue(snippet)
    assert issue.path == path
    assert reason in issue.message
