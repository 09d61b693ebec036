"""The `lake` source over a real dataset: pruning by partition folder, DuckDB filtering, resume, corrupt files, errors."""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from loglake.operators.lake_files import CorruptFileError
from loglake.operators.lake_source import SKIPPED_COUNTER, LakeSource, in_time_range
from loglake.pipelines.nodes import build_node
from loglake.pipelines.runner import run_pipeline
from loglake.schemas.errors import SpecError
from loglake.schemas.records import TIMESTAMP_TYPE
from loglake.schemas.stage import NodeContext
from tests.corruption import corrupt
from tests.support import APACHE_LOG, build_source, drain

WRITER = """\
pipeline: writer
sources:
  access: {type: file, paths: [access.log]}
stages:
  parse: {type: apache_combined}
sinks:
  records: {type: parquet, inputs: [parse], dataset: access}
  by_status: {type: parquet, inputs: [parse], dataset: by_status, partition_by: [response]}
"""
SINCE, UNTIL = "2015-05-17T12:30:00Z", "2015-05-17T15:10:00Z"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a pipeline that wrote 3,000 real requests into `access` (date/hour) and `by_status` (response)."""
    folder = tmp_path_factory.mktemp("lake_source")
    lines = APACHE_LOG.read_text(encoding="utf-8").splitlines(keepends=True)[:3000]
    (folder / "access.log").write_text("".join(lines), encoding="utf-8")
    (folder / "writer.yaml").write_text(WRITER, encoding="utf-8")
    run_pipeline(folder / "writer.yaml")
    return folder


def _read_all(source: LakeSource, partition: str, resume: object = None) -> tuple[list[pa.RecordBatch], object]:
    reader = source.open(partition, resume)
    return drain(reader), reader.position()


def _table(batches: list[pa.RecordBatch]) -> pa.Table:
    return pa.Table.from_batches(batches) if batches else pa.table({})


def _raw(dataset: Path, where: str = "true") -> str:
    return f"SELECT * EXCLUDE (date, hour) FROM read_parquet('{dataset}/**/*.parquet', hive_partitioning = true) WHERE {where}"


@pytest.mark.parametrize(
    "folder, since, until, inside",
    [
        ("date=2015-05-17/hour=12", "2015-05-17T12:59:59", None, True),
        ("date=2015-05-17/hour=12", "2015-05-17T13:00:00", None, False),
        ("date=2015-05-17/hour=12", None, "2015-05-17T12:00:00", True),
        ("date=2015-05-17/hour=12", None, "2015-05-17T11:59:59", False),
        ("date=2015-05-17", "2015-05-17T23:00:00", "2015-05-18T01:00:00", True),
        ("date=2015-05-17", "2015-05-18T00:00:00", None, False),
        ("response=404", "2030-01-01T00:00:00", None, True),
    ],
    ids=["ends-after-since", "ends-at-since", "starts-at-until", "starts-after-until", "day-overlaps", "day-before", "no-date"],
)
def test_a_partition_folder_is_kept_when_its_time_can_overlap_the_range(folder: str, since: str | None, until: str | None, inside: bool) -> None:
    assert in_time_range(Path(folder), since and _utc(since), until and _utc(until)) == inside


def test_only_the_hours_in_range_are_opened_and_the_records_equal_duckdb_over_the_dataset(lake: Path) -> None:
    where = "response >= 300 OR verb = 'HEAD'"
    source = build_source(f"{{type: lake, dataset: access, where: \"{where}\", since: {SINCE}, until: {UNTIL}, batch_size: 7}}", base_dir=lake)

    assert source.partitions() == [f"date=2015-05-17/hour={hour}" for hour in (12, 13, 14, 15)]
    on_disk = {p.parent.name: sorted(p.parent.glob("*.parquet")) for p in (lake / "lake" / "access").rglob("*.parquet")}
    assert [source.files[name] for name in source.partitions()] == [on_disk[f"hour={hour}"] for hour in (12, 13, 14, 15)]
    batches = [batch for name in source.partitions() for batch in _read_all(source, name)[0]]
    assert all(0 < batch.num_rows <= 7 for batch in batches)
    table = _table(batches)
    assert table.schema.field("timestamp").type == TIMESTAMP_TYPE
    assert "date" not in table.schema.names and "hour" not in table.schema.names
    expected = _raw(lake / "lake" / "access", f"({where}) AND timestamp BETWEEN '{SINCE}' AND '{UNTIL}'")
    read_back = table  # noqa: F841 (scanned by DuckDB)
    assert duckdb.sql(f"SELECT count(*) FROM (({expected}) EXCEPT ALL (SELECT * FROM read_back))").fetchall() == [(0,)]
    assert duckdb.sql(f"SELECT count(*) FROM ((SELECT * FROM read_back) EXCEPT ALL ({expected}))").fetchall() == [(0,)]
    assert source.expected_records() == table.num_rows > 0


def test_a_dataset_partitioned_by_a_record_column_gives_it_back_as_a_column(lake: Path) -> None:
    later = build_source("{type: lake, dataset: by_status, since: 2030-01-01T00:00:00Z}", base_dir=lake)
    assert [batch for name in later.partitions() for batch in _read_all(later, name)[0]] == []  # no date= folder to prune by

    source = build_source("{type: lake, dataset: by_status, where: 'response >= 400'}", base_dir=lake)

    assert source.partitions() == sorted(folder.name for folder in (lake / "lake" / "by_status").iterdir() if folder.is_dir())
    table = _table([batch for name in source.partitions() for batch in _read_all(source, name)[0]])
    assert sorted(set(table.column("response").to_pylist())) == [row[0] for row in duckdb.sql(
        f"SELECT DISTINCT response FROM read_parquet('{lake}/lake/access/**/*.parquet') WHERE response >= 400 ORDER BY 1"
    ).fetchall()]


def test_a_partition_resumes_where_it_stopped_and_picks_up_files_added_later(lake: Path) -> None:
    source = build_source("{type: lake, dataset: access, batch_size: 20}", base_dir=lake)
    partition = "date=2015-05-17/hour=13"
    everything, finished = _read_all(source, partition)
    reader = source.open(partition, None)
    first = reader.read()
    assert first is not None

    rest, _ = _read_all(source, partition, reader.position())

    assert _table([first, *rest]).equals(_table(everything))
    assert _read_all(source, partition, finished)[0] == []
    folder = lake / "lake" / "access" / "date=2015-05-17" / "hour=13"
    added = folder / "part-99991231T000000-w9-000001-00000000.parquet"
    shutil.copy(source.files[partition][0], added)
    try:
        later = build_source("{type: lake, dataset: access}", base_dir=lake)
        again, _ = _read_all(later, partition, finished)
    finally:
        added.unlink()
    assert _table(again).num_rows == _table(everything).num_rows


@pytest.mark.parametrize("workers", [1, 2])
def test_a_pipeline_reads_the_lake_from_yaml_with_workers_sharing_its_partitions(lake: Path, workers: int) -> None:
    pipeline = lake / f"copy{workers}.yaml"
    pipeline.write_text(
        f"pipeline: copy{workers}\nlake: out{workers}\nsources:\n  old: {{type: lake, path: lake/access, where: 'bytes > 10000'}}\n"
        "sinks:\n  new: {type: parquet, dataset: big}\n",
        encoding="utf-8",
    )

    result = run_pipeline(pipeline)

    expected = _raw(lake / "lake" / "access", "bytes > 10000")
    copied = _raw(lake / f"out{workers}" / "big")
    assert result.records_read == duckdb.sql(f"SELECT count(*) FROM ({expected})").fetchall()[0][0] > 0
    assert duckdb.sql(f"SELECT count(*) FROM (({expected}) EXCEPT ALL ({copied}))").fetchall() == [(0,)]


@pytest.mark.parametrize(
    "snippet, path, message",
    [
        ("{type: lake, dataset: acess}", ("dataset",), "no dataset 'acess' in the lake folder {lake}/lake; did you mean 'access'?"),
        ("{type: lake, dataset: nothing_like_it}", ("dataset",), "no dataset 'nothing_like_it' in the lake folder {lake}/lake; datasets: access, by_status"),
        ("{type: lake, path: no/such/folder}", ("path",), "dataset folder 'no/such/folder' ({lake}/no/such/folder) does not exist"),
        ("{type: lake}", (), "give exactly one of 'dataset' (a dataset in the lake) and 'path' (a folder)"),
        ("{type: lake, dataset: access, since: 2015-05-18T00:00:00Z, until: 2015-05-17T00:00:00Z}", (), "since (2015-05-18T00:00:00+00:00) is after until (2015-05-17T00:00:00+00:00)"),
        ("{type: lake, dataset: access, where: 'respnse = 200'}", ("where",), "the dataset has no column 'respnse'; did you mean 'response'?"),
        ("{type: lake, dataset: access, where: 'count(*) > 1'}", ("where",), "invalid SQL expression \"count(*) > 1\": aggregate function 'count' would fold the batch into one row; aggregate in a window stage"),
        ("{type: lake, dataset: bad-name}", ("dataset",), "dataset name 'bad-name' must start with a letter or '_' and hold only letters, digits and '_'"),
    ],
    ids=["misspelt-dataset", "unknown-dataset", "missing-folder", "no-dataset", "since-after-until", "unknown-column", "aggregate", "bad-name"],
)
def test_bad_config_names_the_field(lake: Path, snippet: str, path: tuple[str, ...], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        build_source(snippet, base_dir=lake)

    issue = caught.value.issues[0]
    assert (issue.path, issue.message) == (path, message.format(lake=lake))


@pytest.fixture
def damaged(lake: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of `access` (under tmp_path/lake) with one file truncated and another with garbled pages (its
    footer intact); returns those two files and the copy's folder."""
    copy = tmp_path / "lake" / "access"
    shutil.copytree(lake / "lake" / "access", copy)
    files = sorted(copy.rglob("*.parquet"))
    truncated, garbled = files[0], files[2]
    corrupt(truncated, "truncated")
    corrupt(garbled, "bad-page")
    return truncated, garbled, copy


def _history(tmp_path: Path, on_corrupt: str) -> tuple[LakeSource, NodeContext]:
    ctx = NodeContext(node="history", base_dir=tmp_path)
    return build_node("source", "history", {"type": "lake", "dataset": "access", "on_corrupt": on_corrupt}, ctx), ctx


def test_skip_reads_every_other_file_and_counts_and_names_the_corrupt_ones(
    lake: Path, tmp_path: Path, damaged: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    truncated, garbled, copy = damaged
    with caplog.at_level(logging.WARNING, logger="loglake.operators.lake_source"):
        source, ctx = _history(tmp_path, "skip")
        table = _table([batch for name in source.partitions() for batch in _read_all(source, name)[0]])

    healthy = ", ".join(f"'{path}'" for path in sorted(copy.rglob("*.parquet")) if path not in (truncated, garbled))
    assert table.num_rows == duckdb.sql(f"SELECT count(*) FROM read_parquet([{healthy}])").fetchall()[0][0] > 0
    assert ctx.counters[SKIPPED_COUNTER] == 2
    warnings = [record.getMessage() for record in caplog.records]
    assert [f"history: skipped {truncated}, not a readable Parquet file (Parquet magic bytes not found in footer)"] == warnings[:1]
    assert len(warnings) == 2 and warnings[1].startswith(f"history: skipped {garbled}, not a readable Parquet file (")


def test_fail_stops_at_a_broken_footer_before_reading_and_at_a_broken_page_when_read(tmp_path: Path, damaged: tuple[Path, Path, Path]) -> None:
    truncated, garbled, _ = damaged
    hint = "; set `on_corrupt: skip` on the lake source (replay: --on-corrupt skip) to read the other files, or move it out of the lake"
    with pytest.raises(CorruptFileError) as caught:
        _history(tmp_path, "fail")
    assert str(caught.value) == f"history: {truncated} is not a readable Parquet file (Parquet magic bytes not found in footer){hint}"

    truncated.unlink()
    source, _ = _history(tmp_path, "fail")
    partition = garbled.parent.relative_to(tmp_path / "lake" / "access").as_posix()
    with pytest.raises(CorruptFileError) as caught:
        _read_all(source, partition)
    assert (caught.value.path, caught.value.node) == (garbled, "history")
    assert str(caught.value).endswith(hint)
