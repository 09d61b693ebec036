"""`replay --rebuild` replaces exactly the partitions of a time range, atomically, and never duplicates rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from loglake.pipelines.cli import main
from loglake.pipelines.replay import ReplayError, ReplayRequest, plan_replay, run_replay
from loglake.pipelines.runner import RunOptions, run_pipeline
from tests.support import APACHE_LOG

BUGGY = """\
pipeline: access
lake: lake
sources:
  access: {type: file, paths: [access.log]}
stages:
  parse: {type: apache_combined}
  size: {type: eval, fields: {kilobytes: "bytes / 1000"}}
  hourly: {type: window, tumbling: 1h, aggregate: {requests: "count()", kilobytes: "sum(kilobytes)"}}
sinks:
  records: {type: parquet, inputs: [size], dataset: records}
  windows: {type: parquet, inputs: [hourly], dataset: hourly, partition_by: [date]}
"""
FIXED = BUGGY.replace('"bytes / 1000"', '"bytes / 1024"')
SINCE, UNTIL = "2015-05-18T00:00:00+00:00", "2015-05-19T00:00:00+00:00"


@pytest.fixture
def live_lake(tmp_path: Path) -> Path:
    """A lake written by the buggy pipeline over the real log, then the YAML fixed in place."""
    shutil.copy(APACHE_LOG, tmp_path / "access.log")
    (tmp_path / "pipeline.yaml").write_text(BUGGY)
    run_pipeline(tmp_path / "pipeline.yaml", RunOptions(checkpoint=False))
    (tmp_path / "pipeline.yaml").write_text(FIXED)
    return tmp_path / "lake"


def _rows(lake: Path, dataset: str, where: str = "true") -> list[tuple[object, ...]]:
    glob = lake / dataset / "**" / "*.parquet"
    sql = f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true) WHERE {where} ORDER BY ALL"
    return duckdb.sql(sql).fetchall()


def _files(lake: Path, dataset: str, where: str) -> set[Path]:
    return {path for path in (lake / dataset).rglob("*.parquet") if where in path.as_posix()}


def test_rebuild_replaces_the_range_and_leaves_everything_else_as_it_was(live_lake: Path, tmp_path: Path) -> None:
    in_range = "timestamp >= TIMESTAMPTZ '2015-05-18 00:00:00+00' AND timestamp < TIMESTAMPTZ '2015-05-19 00:00:00+00'"
    before_outside = _rows(live_lake, "records", f"NOT ({in_range})")
    untouched_files = _files(live_lake, "records", "date=2015-05-17") | _files(live_lake, "records", "date=2015-05-19")
    windows_before = _rows(live_lake, "hourly", "date <> '2015-05-18'")
    windows_total = len(_rows(live_lake, "hourly"))

    request = ReplayRequest("files", paths=("access.log",), since=_time(SINCE), until=_time(UNTIL), rebuild=True)
    plan = plan_replay(tmp_path / "pipeline.yaml", request, cwd=tmp_path)
    run_replay(plan)

    assert plan.rebuilt is not None
    assert plan.rebuilt.replaced == {"records": 24, "hourly": 1} and plan.rebuilt.emptied == {}
    in_range_count = 2893  # requests on 2015-05-18 in the log (the sum of its 24 hours)
    windows_in_range = len(_rows(live_lake, "hourly", "date = '2015-05-18'"))
    written = 9999 + windows_total + 1  # records, windows and the unparsable line's dead letter (stamped with today)
    assert plan.rebuilt.outside == written - in_range_count - windows_in_range
    assert _rows(live_lake, "records", f"NOT ({in_range})") == before_outside, "partitions outside the range are not touched"
    assert untouched_files <= _files(live_lake, "records", "")
    fixed = duckdb.sql(
        f"SELECT count(*), count(*) FILTER (WHERE kilobytes IS NOT DISTINCT FROM bytes / 1024) FROM read_parquet('{live_lake}/records/**/*.parquet') WHERE {in_range}"
    ).fetchall()[0]
    assert fixed == (in_range_count, in_range_count), "the range holds the fixed records, once each"
    assert len(_rows(live_lake, "records")) == 9999
    assert _rows(live_lake, "hourly", "date <> '2015-05-18'") == windows_before
    day = duckdb.sql(f"SELECT sum(requests), round(sum(kilobytes) * 1024) FROM read_parquet('{live_lake}/hourly/date=2015-05-18/*.parquet')").fetchall()[0]
    expected = duckdb.sql(f"SELECT count(*), round(sum(bytes)) FROM read_parquet('{live_lake}/records/**/*.parquet') WHERE {in_range}").fetchall()[0]
    assert day == expected
    assert not [p for p in (live_lake).glob(".*.staging/*")], "staging copies are cleaned up"


def test_a_live_partition_the_replay_produces_nothing_for_is_emptied(live_lake: Path, tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(FIXED.replace("  size:", "  keep: {type: filter, condition: \"hour(timestamp) <> 5\"}\n  size:"))
    request = ReplayRequest("files", paths=("access.log",), since=_time(SINCE), until=_time(UNTIL), rebuild=True)
    plan = plan_replay(tmp_path / "pipeline.yaml", request, cwd=tmp_path)
    run_replay(plan)
    assert plan.rebuilt is not None and plan.rebuilt.emptied == {"records": 1}
    assert not (live_lake / "records" / "date=2015-05-18" / "hour=05").exists()
    assert (live_lake / "records" / "date=2015-05-17" / "hour=05").exists() is False  # the log starts at 10:00 that day
    assert (live_lake / "records" / "date=2015-05-19" / "hour=05").is_dir()


@pytest.mark.parametrize(
    "since, until, message",
    [
        ("2015-05-18T00:30:00+00:00", UNTIL, "--since 2015-05-18T00:30:00+00:00 falls inside a partition of sink 'records' (one per hour), and a rebuild replaces whole partitions: use --since 2015-05-18T00:00:00+00:00 or 2015-05-18T01:00:00+00:00"),
        (SINCE, "2015-05-18T12:00:00+00:00", "--until 2015-05-18T12:00:00+00:00 falls inside a partition of sink 'windows' (one per day)"),
    ],
)
def test_a_range_that_splits_a_partition_is_refused(live_lake: Path, tmp_path: Path, since: str, until: str, message: str) -> None:
    request = ReplayRequest("files", paths=("access.log",), since=_time(since), until=_time(until), rebuild=True)
    with pytest.raises(ReplayError) as caught:
        plan_replay(tmp_path / "pipeline.yaml", request, cwd=tmp_path)
    assert message in str(caught.value)
    assert not list(live_lake.glob(".*.staging/*"))


@pytest.mark.parametrize(
    "request_fields, message",
    [
        ({"since": None}, "--rebuild needs --since and --until"),
        ({"origin": "dead-letter", "paths": ()}, "--from dead-letter adds the replayed records instead"),
        ({"to": (("records", "other"),)}, "--to may only print a sink"),
    ],
)
def test_rebuild_flags_that_do_not_fit_are_refused(tmp_path: Path, request_fields: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"origin": "files", "paths": ("access.log",), "since": _time(SINCE), "until": _time(UNTIL), "rebuild": True}
    fields.update(request_fields)
    with pytest.raises(ReplayError, match=message):
        ReplayRequest(**fields).check()  # type: ignore[arg-type]


def test_cli_rebuild_reports_what_it_replaced(live_lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["replay", "pipeline.yaml", "--from", "files", "access.log", "--since", SINCE, "--until", UNTIL, "--rebuild"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "rebuilt hourly: 1 partition(s) replaced, 0 emptied; records: 24 partition(s) replaced, 0 emptied" in out.out + out.err
    assert len(_rows(live_lake, "records")) == 9999


def _time(text: str):  # type: ignore[no-untyped-def]
    from datetime import datetime

    return datetime.fromisoformat(text)
