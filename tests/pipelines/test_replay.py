"""A replay reproduces what the stream wrote: files, the lake and a Kafka range, compared in DuckDB with EXCEPT ALL.

Columns that legitimately differ between a run and its replay, and are left out of the comparison:
- `timestamp` (and the `date`/`hour` folders derived from it) of dead letters: a record that failed parsing
  has no event time, so the sink stamps it with the time it was written;
- `source` when the replay reads the same lines from other files (`.gz` copies): it names the file read.
Everything else (parsed fields, `_line`, Kafka offsets, window aggregates) must match exactly.
"""

from __future__ import annotations

import gzip
import logging
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from loglake.pipelines.broker import LocalBroker
from loglake.pipelines.replay import OffsetRange, ReplayError, ReplayRequest, plan_replay, run_replay
from loglake.pipelines.runner import RunOptions, run_pipeline
from tests.pipelines.test_window_engine import two_partitions  # noqa: F401 (a fixture: the log split in two files)
from tests.support import APACHE_LOG

AGGREGATES = '{requests: "count()", total_bytes: "sum(bytes)", largest: "max(bytes)", clients: "count_distinct(clientip)"}'
FILE_PIPELINE = f"""\
pipeline: access
lake: lake
sources:
  access: {{type: file, paths: [early.log, late.log]}}
stages:
  parse: {{type: apache_combined}}
  hourly: {{type: window, tumbling: 1h, group_by: [response], aggregate: {AGGREGATES}}}
sinks:
  records: {{type: parquet, inputs: [parse], dataset: records}}
  windows: {{type: parquet, inputs: [hourly], dataset: hourly}}
"""
KAFKA_PIPELINE = FILE_PIPELINE.replace("pipeline: access", "pipeline: access-kafka").replace(
    "{type: file, paths: [early.log, late.log]}", "{type: kafka, brokers: ['BROKERS'], topics: [TOPIC], group: live-group, stop_at: end}"
)
REDIRECTS = (("records", "records_replay"), ("windows", "hourly_replay"), ("dead_letter", "dead_letter_replay"))
DEAD_LETTER_INGEST_TIME = ("timestamp", "date", "hour")


def _dataset(lake: Path, name: str, exclude: tuple[str, ...] = ()) -> str:
    columns = f"* EXCLUDE ({', '.join(exclude)})" if exclude else "*"
    glob = lake / name / "**" / "*.parquet"
    return f"SELECT {columns} FROM read_parquet('{glob}', hive_partitioning = true, union_by_name = true, hive_types = {{'hour': INTEGER}})"


def _except_all(left: str, right: str) -> tuple[int, int]:
    """Rows of `left` missing from `right` and rows of `right` missing from `left`, duplicates counted."""
    missing = duckdb.sql(f"SELECT count(*) FROM (({left}) EXCEPT ALL ({right}))").fetchall()[0][0]
    extra = duckdb.sql(f"SELECT count(*) FROM (({right}) EXCEPT ALL ({left}))").fetchall()[0][0]
    return missing, extra


def _count(query: str) -> int:
    return int(duckdb.sql(f"SELECT count(*) FROM ({query})").fetchall()[0][0])


def _assert_same_datasets(lake: Path, file_named: bool = True) -> None:
    """Each live dataset equals its replayed copy (`file_named`: the replay read the same files)."""
    for live, replayed in (("records", "records_replay"), ("hourly", "hourly_replay"), ("dead_letter", "dead_letter_replay")):
        skip = (() if file_named or live == "hourly" else ("source",)) + (DEAD_LETTER_INGEST_TIME if live == "dead_letter" else ())
        left, right = _dataset(lake, live, skip), _dataset(lake, replayed, skip)
        assert _count(left) > 0, live
        assert _except_all(left, right) == (0, 0), f"{live} vs {replayed}"


@pytest.fixture
def split_log(two_partitions: Path) -> Path:
    """The real Apache log split in two files, `early.log` and `late.log` (the second holds the later days), and
    the pipeline reading them."""
    two_partitions.write_text(FILE_PIPELINE, encoding="utf-8")
    return two_partitions


@pytest.mark.parametrize("workers", [1, 2])
def test_replaying_the_input_of_a_streaming_run_gives_the_same_lake_windows_included(split_log: Path, workers: int) -> None:
    run_pipeline(split_log)
    folder = split_log.parent
    request = ReplayRequest("files", paths=("early.log", "late.log"), to=REDIRECTS)

    result = run_replay(plan_replay(split_log, request, cwd=folder), workers=workers)

    assert result.records_read == 10_000
    _assert_same_datasets(folder / "lake")


def test_a_replay_from_gzip_copies_differs_only_in_the_file_it_names(split_log: Path) -> None:
    run_pipeline(split_log)
    folder = split_log.parent
    for name in ("early.log", "late.log"):
        with open(folder / name, "rb") as plain, gzip.open(folder / f"{name}.gz", "wb") as packed:
            shutil.copyfileobj(plain, packed)
    request = ReplayRequest("files", paths=("*.log.gz",), to=REDIRECTS)

    run_replay(plan_replay(split_log, request, cwd=folder))

    _assert_same_datasets(folder / "lake", file_named=False)
    sources = duckdb.sql(f"SELECT DISTINCT source FROM ({_dataset(folder / 'lake', 'records_replay')}) ORDER BY 1").fetchall()
    assert sources == [(str(folder / "early.log.gz"),), (str(folder / "late.log.gz"),)]


def test_a_replay_reads_no_checkpoint_saves_none_and_keeps_out_of_the_recovery_folder(split_log: Path) -> None:
    folder = split_log.parent
    recovery = folder / "recovery"
    run_pipeline(split_log, RunOptions(recovery_dir=recovery))
    checkpoint = folder / "lake" / "_checkpoints" / "access.json"
    saved = checkpoint.read_bytes()
    snapshots = {path.name: path.stat().st_mtime_ns for path in recovery.iterdir()}

    result = run_replay(plan_replay(split_log, ReplayRequest("files", paths=("early.log", "late.log"), to=REDIRECTS), cwd=folder))

    assert result.records_read == 10_000  # the checkpoint says both files were read to their end
    assert checkpoint.read_bytes() == saved
    assert {path.name: path.stat().st_mtime_ns for path in recovery.iterdir()} == snapshots


def test_writing_into_live_datasets_is_refused_with_the_flags_that_avoid_it(split_log: Path) -> None:
    run_pipeline(split_log)

    with pytest.raises(ReplayError) as caught:
        plan_replay(split_log, ReplayRequest("files", paths=("early.log",), to=(("records", "records_replay"),)), cwd=split_log.parent)

    assert str(caught.value) == (
        "a replay would write where the pipeline writes in normal runs: dataset 'hourly' (sink 'windows'), "
        "dataset 'dead_letter' (sink 'dead_letter'); send each elsewhere (--to windows=hourly_replay "
        "--to dead_letter=dead_letter_replay; SINK=stdout prints) or pass --force to write there anyway"
    )


def test_force_writes_into_the_live_datasets(split_log: Path) -> None:
    run_pipeline(split_log)
    lake = split_log.parent / "lake"

    run_replay(plan_replay(split_log, ReplayRequest("files", paths=("early.log",), force=True), cwd=split_log.parent))

    assert _count(_dataset(lake, "records")) == 9_999 + 5_000  # line 8,899 (in late.log) fails to parse
    twice = f"SELECT _line FROM ({_dataset(lake, 'records')}) WHERE source LIKE '%early.log' GROUP BY 1 HAVING count(*) = 2"
    assert _count(twice) == 5_000


def test_redirecting_to_stdout_prints_the_records(split_log: Path, capfd: pytest.CaptureFixture[str]) -> None:
    request = ReplayRequest("files", paths=("early.log",), to=(("records", "stdout"), ("windows", "stdout"), ("dead_letter", "stdout")))

    run_replay(plan_replay(split_log, request, cwd=split_log.parent))

    lines = capfd.readouterr().out.splitlines()
    assert sum('"clientip"' in line for line in lines) == 5_000
    assert not (split_log.parent / "lake").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_lake_replay_equals_duckdb_over_the_dataset_pruned_and_filtered(split_log: Path, workers: int) -> None:
    run_pipeline(split_log)
    lake = split_log.parent / "lake"
    since, until = datetime(2015, 5, 18, 3, 30, tzinfo=timezone.utc), datetime(2015, 5, 19, 7, 59, 59, tzinfo=timezone.utc)
    request = ReplayRequest("lake", dataset="records", where="response >= 400 OR verb = 'HEAD'", since=since, until=until, to=REDIRECTS)

    plan = plan_replay(split_log, request, cwd=split_log.parent)
    result = run_replay(plan, workers=workers)

    expected = _dataset(lake, "records", ("date", "hour")) + (
        f" WHERE (response >= 400 OR verb = 'HEAD') AND timestamp BETWEEN '{since.isoformat()}' AND '{until.isoformat()}'"
    )
    assert _except_all(expected, _dataset(lake, "records_replay", ("date", "hour"))) == (0, 0)
    assert result.records_read == _count(expected) > 0
    opened = plan.compiled.instances["access"].files
    assert sorted(opened) == [f"date=2015-05-18/hour={h:02d}" for h in range(3, 24)] + [f"date=2015-05-19/hour={h:02d}" for h in range(8)]


def _event_millis(line: bytes) -> int:
    stamp = line.split(b"[", 1)[1].split(b"]", 1)[0].decode()
    return int(datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z").timestamp() * 1000)


def _expected_offsets(stamps: list[int], since: int, until: int) -> list[int]:
    """The source's rule: from the first message at or after `since` up to, not including, the first after `until`."""
    first = next(i for i, stamp in enumerate(stamps) if stamp >= since)
    end = next((i for i in range(first, len(stamps)) if stamps[i] > until), len(stamps))
    return list(range(first, end))


@pytest.fixture
def kafka_history(tmp_path: Path, kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> tuple[Path, str, dict[int, list[int]]]:
    """Real lines in a 2-partition topic, each stamped with its request time, read once by the live pipeline."""
    topic = kafka_topic(partitions=2)
    lines = APACHE_LOG.read_bytes().splitlines()
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap, "linger.ms": 20, "logger": logging.getLogger("test-producer")})
    stamps: dict[int, list[int]] = {0: [], 1: []}
    for index, line in enumerate(lines):
        partition = index % 2
        stamp = _event_millis(line) if b"[" in line else stamps[partition][-1]
        producer.produce(topic, line, partition=partition, timestamp=stamp)
        stamps[partition].append(stamp)
    assert producer.flush(10) == 0
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(KAFKA_PIPELINE.replace("BROKERS", kafka_broker.bootstrap).replace("TOPIC", topic), encoding="utf-8")
    run_pipeline(pipeline)
    return pipeline, topic, stamps


def _committed(bootstrap: str, topic: str, group: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return [tp.offset for tp in consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)]
    finally:
        consumer.close()


def test_a_kafka_time_range_replays_only_its_records_and_leaves_the_live_group_alone(
    kafka_history: tuple[Path, str, dict[int, list[int]]], kafka_broker: LocalBroker
) -> None:
    pipeline, topic, stamps = kafka_history
    lake = pipeline.parent / "lake"
    checkpoint = (lake / "_checkpoints" / "access-kafka.json").read_bytes()
    assert _committed(kafka_broker.bootstrap, topic, "live-group") == [5_000, 5_000]
    since, until = datetime(2015, 5, 18, 0, 0, tzinfo=timezone.utc), datetime(2015, 5, 18, 5, 59, 59, tzinfo=timezone.utc)

    result = run_replay(plan_replay(pipeline, ReplayRequest("kafka", since=since, until=until, to=REDIRECTS)))

    wanted = {p: _expected_offsets(s, int(since.timestamp() * 1000), int(until.timestamp() * 1000)) for p, s in stamps.items()}
    got = duckdb.sql(f"SELECT kafka_partition, list(kafka_offset ORDER BY kafka_offset) FROM ({_dataset(lake, 'records_replay')}) GROUP BY 1").fetchall()
    assert dict(got) == wanted
    assert result.records_read == sum(map(len, wanted.values()))
    in_range = " OR ".join(f"(kafka_partition = {p} AND kafka_offset BETWEEN {o[0]} AND {o[-1]})" for p, o in wanted.items())
    assert _except_all(_dataset(lake, "records") + f" WHERE {in_range}", _dataset(lake, "records_replay")) == (0, 0)
    whole_hours = f" WHERE window_start >= '{since.isoformat()}' AND window_end <= '2015-05-18T05:00:00+00:00'"
    assert _count(_dataset(lake, "hourly") + whole_hours) > 0
    assert _except_all(_dataset(lake, "hourly") + whole_hours, _dataset(lake, "hourly_replay") + whole_hours) == (0, 0)
    assert _committed(kafka_broker.bootstrap, topic, "live-group") == [5_000, 5_000]
    assert (lake / "_checkpoints" / "access-kafka.json").read_bytes() == checkpoint


def test_a_kafka_offset_range_replays_exactly_those_offsets(kafka_history: tuple[Path, str, dict[int, list[int]]], kafka_broker: LocalBroker) -> None:
    pipeline, topic, _ = kafka_history
    lake = pipeline.parent / "lake"
    ranges = (OffsetRange("0", 10, 1_009), OffsetRange(f"{topic}/1", 4_990))

    result = run_replay(plan_replay(pipeline, ReplayRequest("kafka", offsets=ranges, to=REDIRECTS)))

    got = duckdb.sql(f"SELECT kafka_partition, min(kafka_offset), max(kafka_offset), count(*) FROM ({_dataset(lake, 'records_replay')}) GROUP BY 1 ORDER BY 1").fetchall()
    assert got == [(0, 10, 1_009, 1_000), (1, 4_990, 4_999, 10)]
    assert result.records_read == 1_010
    assert _committed(kafka_broker.bootstrap, topic, "live-group") == [5_000, 5_000]


def test_a_lake_source_is_replaced_by_the_dataset_and_range_asked_for(split_log: Path) -> None:
    run_pipeline(split_log)
    copy = split_log.with_name("copy.yaml")
    copy.write_text(
        "pipeline: copy\nlake: lake\nsources:\n  old: {type: lake, dataset: hourly, batch_size: 5}\nsinks:\n  new: {type: parquet, dataset: copied}\n",
        encoding="utf-8",
    )
    request = ReplayRequest("lake", dataset="records", where="response = 404", to=(("new", "copied_404"),))

    result = run_replay(plan_replay(copy, request, cwd=split_log.parent))

    lake = split_log.parent / "lake"
    assert result.records_read == _count(_dataset(lake, "records") + " WHERE response = 404") > 5
    assert _except_all(_dataset(lake, "records", ("date", "hour")) + " WHERE response = 404", _dataset(lake, "copied_404", ("date", "hour"))) == (0, 0)
