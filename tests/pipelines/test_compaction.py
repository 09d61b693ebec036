"""Compaction merges small part files per partition, keeps every row once, and never disturbs a reader."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from datetime import timedelta
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loglake.operators.parquet.lineage import lineage_folder, parse_part_name
from loglake.pipelines.compaction import CompactionError, CompactionOptions, compact_dataset
from loglake.pipelines.partition_swap import leaf_partitions
from loglake.schemas.stage import NodeContext
from tests.support import APACHE_LOG, batch_of, build_stage

NOW = CompactionOptions(min_age=timedelta(0))


@cache
def parsed_access_log() -> pa.RecordBatch:
    """The 10,000 real requests, parsed (event time, typed fields); the one truncated line is left out."""
    lines = APACHE_LOG.read_text(encoding="utf-8").splitlines()
    return build_stage("{type: apache_combined}").process(batch_of(message=lines)).main


def write_small_files(lake: Path, rows: pa.RecordBatch, per_file: int, dataset: str = "access", **options: object) -> Path:
    """Write `rows` with a real `parquet` sink that commits a file every `per_file` records (and has `options`)."""
    from loglake.operators.parquet import ParquetSink
    from loglake.operators.parquet.config import ParquetConfig

    config = ParquetConfig.model_validate({"type": "parquet", "dataset": dataset, "max_file_rows": per_file, **options})
    sink = ParquetSink(config, NodeContext(node="lake", base_dir=lake.parent, lake_dir=lake))
    writer = sink.open(0, 1)
    for start in range(0, rows.num_rows, 1000):
        writer.write(rows.slice(start, 1000))
    writer.close()
    return lake / dataset


def parquet_files(dataset: Path) -> list[Path]:
    return sorted(dataset.rglob("*.parquet"))


def files_in(files: list[Path], folder: Path | str) -> int:
    """How many of `files` lie directly in `folder` (a path, or a partition relative to the dataset)."""
    return sum(1 for path in files if path.parent == folder or path.parent.as_posix().endswith(f"/{folder}"))


def rows_by_partition(dataset: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row (request fields) per partition folder, in file-name then row order."""
    found: dict[str, list[tuple[object, ...]]] = {}
    for path in parquet_files(dataset):
        table = pq.read_table(path, columns=["clientip", "timestamp", "request", "bytes"])
        found.setdefault(path.parent.relative_to(dataset).as_posix(), []).extend(zip(*table.to_pydict().values()))
    return found


def test_small_files_are_merged_with_every_row_kept_in_order(tmp_path: Path) -> None:
    dataset = write_small_files(tmp_path / "lake", parsed_access_log(), per_file=100)
    before_files = parquet_files(dataset)
    before = rows_by_partition(dataset)
    result = compact_dataset(dataset, (tmp_path / "lake", "access"), NOW)
    after_files = parquet_files(dataset)
    assert len(before_files) > 100 and len(after_files) == len(leaf_partitions(dataset))
    assert result.files_in - result.files_out == len(before_files) - len(after_files)
    assert sum(len(rows) for rows in before.values()) == parsed_access_log().num_rows
    assert result.rows == sum(len(rows) for folder, rows in before.items() if files_in(before_files, folder) > 1)
    assert rows_by_partition(dataset) == before
    assert not list(tmp_path.glob("lake/.access.staging/*")), "staging folders are cleaned up"


def test_a_sorted_dataset_is_merged_into_sorted_files(tmp_path: Path) -> None:
    """Merged files of a sink with `sort_by` are sorted again (a concatenation of sorted files is not sorted)."""
    from loglake.operators.parquet.config import ParquetConfig
    from loglake.pipelines.maintenance import LakeDataset

    dataset = write_small_files(tmp_path / "lake", parsed_access_log(), per_file=100, sort_by=["clientip"])
    before_files = parquet_files(dataset)
    before = rows_by_partition(dataset)
    config = ParquetConfig.model_validate({"type": "parquet", "dataset": "access", "sort_by": ["clientip"]})
    options = LakeDataset("access", dataset, tmp_path / "lake", config).compaction_options(min_age=timedelta(0))
    result = compact_dataset(dataset, (tmp_path / "lake", "access"), options)

    after_files = parquet_files(dataset)
    assert result.files_in >= 2 * result.files_out > 0 and len(after_files) == len(leaf_partitions(dataset))
    assert {folder: Counter(rows) for folder, rows in rows_by_partition(dataset).items()} == {
        folder: Counter(rows) for folder, rows in before.items()
    }
    merged = [path for path in after_files if path not in before_files]
    assert merged
    for path in merged:
        clients = pq.read_table(path, columns=["clientip"]).column("clientip").to_pylist()
        assert clients == sorted(clients), path
        metadata = pq.ParquetFile(path).metadata
        [order] = metadata.row_group(0).sorting_columns
        assert metadata.schema.column(order.column_index).path == "clientip"


def test_a_dry_run_counts_but_changes_nothing(tmp_path: Path) -> None:
    dataset = write_small_files(tmp_path / "lake", parsed_access_log().slice(0, 2000), per_file=100)
    before = parquet_files(dataset)
    result = compact_dataset(dataset, (tmp_path / "lake", "access"), NOW, dry_run=True)
    folders = {path.parent for path in before}
    assert result.files_in == sum(files_in(before, f) for f in folders if files_in(before, f) > 1)
    assert result.files_out == sum(1 for f in folders if files_in(before, f) > 1)
    assert parquet_files(dataset) == before


def test_recent_partitions_and_large_files_are_left_alone(tmp_path: Path) -> None:
    dataset = write_small_files(tmp_path / "lake", parsed_access_log().slice(0, 2000), per_file=100)
    before = parquet_files(dataset)
    result = compact_dataset(dataset, (tmp_path / "lake", "access"), CompactionOptions(min_age=timedelta(hours=1)))
    assert parquet_files(dataset) == before and result.files_in == 0
    assert {reason for _, reason in result.skipped} == {"written to less than min_age ago"}
    tiny_target = CompactionOptions(min_age=timedelta(0), target_size=64)
    assert compact_dataset(dataset, (tmp_path / "lake", "access"), tiny_target).files_in == 0


def test_files_a_crash_recovery_may_still_roll_back_are_not_merged(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    dataset = write_small_files(lake, parsed_access_log().slice(0, 3000), per_file=100)
    # Pretend writer w0 is a live lineage whose snapshots made files up to sequence 10 final.
    folder = lineage_folder(lake, "access")
    folder.mkdir(parents=True)
    (folder / "p0").write_text("w0")
    (folder / "p0.final").write_text("w0 10")
    unfinal = sorted(p.name for p in parquet_files(dataset) if parse_part_name(p.name).sequence > 10)  # type: ignore[union-attr]
    compact_dataset(dataset, (lake, "access"), NOW)
    remaining = {p.name for p in parquet_files(dataset)}
    assert set(unfinal) <= remaining
    for path in parquet_files(dataset):
        name = parse_part_name(path.name)
        assert name is not None
        if name.writer == "w0" and name.sequence <= 10:  # a final file left as it was: it had no final sibling
            assert [p for p in path.parent.iterdir() if p.suffix == ".parquet" and p.name not in unfinal] == [path]
    assert any(parse_part_name(name).writer.startswith("c") for name in remaining)  # type: ignore[union-attr]
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in parquet_files(dataset)) == 3000


def test_files_with_drifted_schemas_merge_into_their_union(tmp_path: Path) -> None:
    folder = tmp_path / "ds" / "date=2015-05-17"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"n": [1, 2]}), folder / "part-a.parquet")
    pq.write_table(pa.table({"n": [3], "extra": ["x"]}), folder / "part-b.parquet")
    result = compact_dataset(tmp_path / "ds", (tmp_path, "ds"), NOW)
    [merged] = parquet_files(tmp_path / "ds")
    assert result.rows == 3
    assert pq.read_table(merged).to_pydict() == {"n": [1, 2, 3], "extra": [None, None, "x"]}


def test_a_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CompactionError, match="does not exist"):
        compact_dataset(tmp_path / "nope", (tmp_path, "nope"), NOW)


def _count_and_checksum(con: duckdb.DuckDBPyConnection, dataset: Path) -> tuple[int, int]:
    """One query over the dataset's glob; retried when a listed file vanished in a swap (never wrong rows)."""
    sql = f"SELECT count(*), sum(hash(clientip, timestamp, request)) FROM read_parquet('{dataset}/**/*.parquet')"
    deadline = time.monotonic() + 60  # a slow query on a busy machine may overlap a swap several times running
    while True:
        try:
            count, checksum = con.execute(sql).fetchone()  # type: ignore[misc]
            return int(count), int(checksum)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def test_a_reader_querying_in_a_loop_never_sees_rows_missing_or_doubled(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    dataset = write_small_files(lake, parsed_access_log(), per_file=20)
    expected = _count_and_checksum(duckdb.connect(), dataset)
    seen: list[tuple[int, int]] = []
    done = threading.Event()

    def read_until_done() -> None:
        reader = duckdb.connect()
        while not done.is_set():
            seen.append(_count_and_checksum(reader, dataset))

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        result = compact_dataset(dataset, (lake, "access"), NOW)
    finally:
        done.set()
        reader.join()
    assert result.files_in > 400
    assert seen and set(seen) == {expected}, f"{len(seen)} queries"


def test_a_writer_adding_files_during_compaction_loses_nothing(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    rows = parsed_access_log()
    dataset = write_small_files(lake, rows, per_file=50)
    stop = threading.Event()
    written: list[int] = []

    def keep_writing() -> None:
        while not stop.is_set():
            write_small_files(lake, rows.slice(0, 300), per_file=50)
            written.append(300)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            compact_dataset(dataset, (lake, "access"), NOW)
    finally:
        stop.set()
        writer.join()
    total = sum(pq.ParquetFile(p).metadata.num_rows for p in parquet_files(dataset))
    assert written and total == rows.num_rows + sum(written)
    assert not [p for p in dataset.rglob("*") if p.name.endswith(".inprogress")]
    assert os.path.exists(dataset / ".loglake.lock")


def test_cli_compacts_with_a_dry_run_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from loglake.pipelines.cli import main

    dataset = write_small_files(tmp_path / "lake", parsed_access_log().slice(0, 2000), per_file=100)
    before = parquet_files(dataset)
    counts = [files_in(before, folder) for folder in {path.parent for path in before}]
    mergeable, merged_rows = sum(n for n in counts if n > 1), sum(
        pq.ParquetFile(p).metadata.num_rows for p in before if files_in(before, p.parent) > 1
    )
    assert main(["compact", "access", "--lake", str(tmp_path / "lake"), "--dry-run"]) == 0
    leaves = len(leaf_partitions(dataset))
    assert f"left {leaves} partition(s) as they were, written to less than min_age ago: date=2015-05-17/hour=10, " in capsys.readouterr().out
    assert main(["compact", "access", "--lake", str(tmp_path / "lake"), "--min-age", "0s", "--dry-run"]) == 0
    assert f"would merge {mergeable} file(s)" in capsys.readouterr().out and parquet_files(dataset) == before
    assert main(["compact", "access", "--lake", str(tmp_path / "lake"), "--min-age", "0s"]) == 0
    out = capsys.readouterr().out
    assert f"merged {mergeable} file(s)" in out and f"{merged_rows:,} records" in out
    assert len(parquet_files(dataset)) == len(leaf_partitions(dataset)) < len(before)


def test_cli_rejects_a_bad_size_and_an_unknown_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from loglake.pipelines.cli import main

    write_small_files(tmp_path / "lake", parsed_access_log().slice(0, 100), per_file=100)
    assert main(["compact", "access", "--lake", str(tmp_path / "lake"), "--target-size", "big"]) != 0
    assert "--target-size:" in capsys.readouterr().err
    assert main(["compact", "acces", "--lake", str(tmp_path / "lake")]) != 0
    assert "no dataset 'acces'; datasets: access" in capsys.readouterr().err


SCHEDULED = """
pipeline: scheduled
lake: lake
sources:
  log: {type: file, paths: [access.log]}
stages:
  parse: {type: apache_combined}
sinks:
  lake:
    type: parquet
    dataset: access
    max_file_rows: 100
    compact: {every: 1h, min_age: 0s}
    retention: {older_than: 36500d, every: 10m}  # the 2015 log is kept
"""


def test_a_pipeline_schedules_compaction_and_retention_of_its_datasets(tmp_path: Path) -> None:
    from loglake.pipelines.compile import load_and_compile
    from loglake.pipelines.maintenance import maintenance_tasks, parquet_datasets, scheduled_maintenance

    (tmp_path / "pipeline.yaml").write_text(SCHEDULED)
    (tmp_path / "access.log").write_text("")
    compiled = load_and_compile(tmp_path / "pipeline.yaml")
    tasks = maintenance_tasks(parquet_datasets(compiled.instances, compiled.spec.lake_dir))
    assert [(t.description, t.every) for t in tasks] == [
        ("compact access", timedelta(hours=1)),
        ("retention access", timedelta(minutes=10)),
    ]
    dataset = write_small_files(tmp_path / "lake", parsed_access_log().slice(0, 2000), per_file=100)
    before = len(parquet_files(dataset))
    with scheduled_maintenance(tasks):
        deadline = time.monotonic() + 20
        while len(parquet_files(dataset)) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    assert len(parquet_files(dataset)) < before
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in parquet_files(dataset)) == 2000


def test_a_failing_scheduled_task_is_logged_and_does_not_stop_the_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from loglake.pipelines.maintenance import LakeDataset, maintenance_tasks, scheduled_maintenance
    from loglake.operators.parquet.config import ParquetConfig

    folder = tmp_path / "lake" / "flat"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"n": [1]}), folder / "part-a.parquet")  # no date= partitions: retention refuses
    config = ParquetConfig.model_validate({"type": "parquet", "dataset": "flat", "partition_by": [], "retention": "1d"})
    tasks = maintenance_tasks([LakeDataset("flat", folder, tmp_path / "lake", config)])
    with caplog.at_level("ERROR"), scheduled_maintenance(tasks):
        deadline = time.monotonic() + 10
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "retention flat failed (tried again in 1:00:00): " in caplog.text and "no 'date=' partitions" in caplog.text


@pytest.mark.parametrize(
    "snippet, message",
    [
        ("compact: {every: 0s}", "every must be longer than 0s"),
        ("retention: {every: 1h}", "older_than"),
        ("compact: {evry: 1h}", "evry"),
    ],
)
def test_bad_schedules_are_config_errors(snippet: str, message: str) -> None:
    from loglake.schemas.errors import SpecError
    from tests.support import build_sink

    with pytest.raises(SpecError, match=message):
        build_sink(f"{{type: parquet, dataset: access, {snippet}}}")


def test_a_snapshotting_writer_marks_final_only_what_no_resume_can_delete(tmp_path: Path) -> None:
    from loglake.operators.parquet import ParquetSink
    from loglake.operators.parquet.config import ParquetConfig
    from loglake.operators.parquet.lineage import unfinal_sequences

    lake = tmp_path / "lake"
    config = ParquetConfig.model_validate({"type": "parquet", "dataset": "access"})
    sink = ParquetSink(config, NodeContext(node="lake", base_dir=tmp_path, lake_dir=lake))
    rows = parsed_access_log().slice(0, 10)
    writer = sink.open_partition("0", None, keeps_snapshots=True)
    writer.write(rows)
    first = writer.snapshot()
    [floor] = unfinal_sequences(lake, "access").items()
    assert floor == (first["writer"], 0), "nothing is final before a second snapshot"
    writer.write(rows)
    writer.snapshot()
    assert unfinal_sequences(lake, "access") == {first["writer"]: first["sequence"]}
    resumed = sink.open_partition("0", first, keeps_snapshots=True)
    assert unfinal_sequences(lake, "access") == {first["writer"]: first["sequence"]}
    resumed.close()
    plain = sink.open_partition("1", None)  # a run without snapshots: its files are final, nothing recorded
    plain.write(rows)
    plain.close()
    assert set(unfinal_sequences(lake, "access")) == {first["writer"]}


def test_a_lake_connection_caching_footers_sees_compacted_and_rewritten_files(tmp_path: Path) -> None:
    from loglake.pipelines.lake import open_lake

    lake = tmp_path / "lake"
    dataset = write_small_files(lake, parsed_access_log().slice(0, 2000), per_file=100)
    con = open_lake(lake=lake)
    count = "SELECT count(*), count(DISTINCT request) FROM access"
    before = con.execute(count).fetchall()
    compact_dataset(dataset, (lake, "access"), NOW)
    assert con.execute(count).fetchall() == before
    victim = parquet_files(dataset)[0]
    rows = pq.read_table(victim)
    time.sleep(0.01)
    pq.write_table(rows.slice(0, 1), victim)  # same name, fewer rows, newer modification time
    assert con.execute(count).fetchall()[0][0] == before[0][0] - rows.num_rows + 1
