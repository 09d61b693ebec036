"""Crash recovery: kill -9 a pipeline at random moments while it writes the lake; every record lands once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from loglake.pipelines.broker import LocalBroker
from loglake.pipelines.produce_cli import produce_lines
from tests.e2e.conftest import Runner, loglake_command

pytestmark = pytest.mark.e2e

RECORDS = 600_000

PIPELINE = """\
pipeline: crashy
lake: lake
sources:
  events: {type: file, paths: [events.jsonl], start_at: beginning}
stages:
  parse: {type: json}
sinks:
  lake: {type: parquet, dataset: events, partition_by: [date, hour], max_file_rows: 15000}
"""

TRACES = 300_000

TRACES_PIPELINE = """\
pipeline: crashy
lake: lake
sources:
  events: {{type: file, paths: [{files}], start_at: beginning}}
stages:
  traces: {{type: multiline, pattern: '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T', negate: true}}
  fields:
    type: eval
    fields:
      id: "TRY_CAST(regexp_extract(message, ' id=([0-9]+) ', 1) AS BIGINT)"
      lines: "len(string_split(message, chr(10)))"
      timestamp: "TRY_CAST(left(message, 20) AS TIMESTAMPTZ)"
sinks:
  lake: {{type: parquet, dataset: events, partition_by: [date, hour], max_file_rows: 5000}}
"""

KAFKA_PIPELINE = """\
pipeline: crashy
lake: lake
sources:
  events: {{type: kafka, brokers: [{brokers}], topics: [{topic}], format: json, stop_at: end, fields: [partition, offset]}}
sinks:
  lake: {{type: parquet, dataset: events, partition_by: [date, hour], max_file_rows: 15000}}
"""


def _events(count: int) -> list[bytes]:
    """JSON lines with a unique id, spread over three hours (so files land in several partitions)."""
    lines = []
    for index in range(count):
        minute = index * 180 // count
        lines.append(b'{"id":%d,"timestamp":"2024-03-01T%02d:%02d:00Z","message":"event %d"}' % (index, 10 + minute // 60, minute % 60, index))
    return lines


def _traces(count: int, files: int) -> tuple[list[list[bytes]], dict[int, int]]:
    """Java-style error events over three hours: a dated first line with a unique id, then 0–5 `at` lines.

    Returns the lines of each file (event `i` goes to file `i % files`) and, per event id, how many lines it has.
    """
    rng = random.Random(11)
    lines: list[list[bytes]] = [[] for _ in range(files)]
    sizes: dict[int, int] = {}
    for index in range(count):
        minute = index * 180 // count
        first = b"2024-03-01T%02d:%02d:%02dZ ERROR [worker-%d] id=%d request failed: java.lang.IllegalStateException: state %d" % (
            10 + minute // 60, minute % 60, index % 60, index % 8, index, rng.randrange(1000))
        event = [first]
        depth = rng.randint(0, 5)
        event.extend(b"\tat com.example.service.Handler%d.handle(Handler.java:%d)" % (level, rng.randrange(1, 500)) for level in range(depth))
        lines[index % files].extend(event)
        sizes[index] = 1 + depth
    return lines, sizes


def _write_events(folder: Path, count: int) -> None:
    (folder / "events.jsonl").write_bytes(b"\n".join(_events(count)) + b"\n")


def _events_with_wrong_lines(lake: Path, sizes: dict[int, int]) -> int:
    """Events whose line count in the lake differs from what was written (lost, split or doubled included)."""
    expected = pa.table({"id": list(sizes), "lines": list(sizes.values())})  # noqa: F841 - read by DuckDB
    rows = duckdb.sql(
        f"""SELECT count(*) FROM expected AS written FULL JOIN
            (SELECT id, sum(lines) AS lines FROM read_parquet('{lake}/events/**/*.parquet', hive_partitioning = true) GROUP BY id) AS landed
            ON written.id = landed.id WHERE written.lines IS DISTINCT FROM landed.lines"""
    ).fetchall()
    return int(rows[0][0])


def _lake_counts(lake: Path) -> tuple[int, int]:
    rows = duckdb.sql(
        f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{lake}/events/**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    return int(rows[0][0]), int(rows[0][1])


def _committed_files(folder: Path) -> int:
    return sum(1 for _ in (folder / "lake" / "events").rglob("*.parquet")) if (folder / "lake" / "events").exists() else 0


def _run_and_kill(folder: Path, new_files: int, workers: int = 1) -> bool:
    """Start `loglake run` with recovery and SIGKILL it once `new_files` more files were committed.

    Whether it was killed mid-run (rather than finishing first). Waiting for files, not seconds, puts the
    kill in the middle of writing however fast the machine is.
    """
    before = _committed_files(folder)
    command = loglake_command("run", "pipeline.yaml", "--recovery-dir", "recovery", "--snapshot-interval", "100ms", "--workers", str(workers))
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None and _committed_files(folder) < before + new_files:
        time.sleep(0.005)
    alive = process.poll() is None
    if alive:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(30)
    return alive


def test_kill_9_at_random_moments_leaves_every_record_exactly_once(tmp_path: Path, loglake: Runner) -> None:
    _write_events(tmp_path, RECORDS)
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    _kill_repeatedly_then_finish(tmp_path, loglake)


def test_kill_9_while_reading_kafka_leaves_every_message_exactly_once(
    tmp_path: Path, loglake: Runner, kafka_broker: LocalBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(partitions=2)
    events = _events(RECORDS)
    for partition in range(2):
        produce_lines(events[partition::2], kafka_broker.bootstrap, topic, partition=partition)
    (tmp_path / "pipeline.yaml").write_text(KAFKA_PIPELINE.format(brokers=kafka_broker.bootstrap, topic=topic))

    _kill_repeatedly_then_finish(tmp_path, loglake)

    files = f"read_parquet('{tmp_path}/lake/events/**/*.parquet', hive_partitioning = true)"
    offsets = duckdb.sql(f"SELECT count(DISTINCT (kafka_partition, kafka_offset)), max(kafka_offset) FROM {files}").fetchall()
    assert offsets == [(RECORDS, RECORDS // 2 - 1)]


@pytest.mark.parametrize("workers", [pytest.param(1, id="one-file-one-worker"), pytest.param(2, id="two-files-two-workers")])
def test_kill_9_mid_stack_trace_leaves_every_event_exactly_once_and_whole(tmp_path: Path, loglake: Runner, workers: int) -> None:
    """The lines of an event in progress are in the snapshot (multiline keeps them in Bytewax state)."""
    per_file, sizes = _traces(TRACES, files=workers)
    names = [f"traces-{index}.log" for index in range(workers)]
    for name, lines in zip(names, per_file):
        (tmp_path / name).write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "pipeline.yaml").write_text(TRACES_PIPELINE.format(files=", ".join(names)))

    _kill_repeatedly_then_finish(tmp_path, loglake, TRACES, workers)

    assert _events_with_wrong_lines(tmp_path / "lake", sizes) == 0


def test_a_kill_before_the_first_snapshot_leaves_nothing_twice(tmp_path: Path, loglake: Runner) -> None:
    """Files rolled (by max_file_rows) before any snapshot was stored are removed by the restart."""
    _write_events(tmp_path, RECORDS)
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    command = loglake_command("run", "pipeline.yaml", "--workers", "2", "--recovery-dir", "recovery", "--snapshot-interval", "1h")
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None and _committed_files(tmp_path) < 6:
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before the kill"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)
    assert _committed_files(tmp_path) >= 6

    loglake("run", "pipeline.yaml", "--workers", "2", "--recovery-dir", "recovery", "--snapshot-interval", "1h")

    assert _lake_counts(tmp_path / "lake") == (RECORDS, RECORDS)


def _kill_repeatedly_then_finish(tmp_path: Path, loglake: Runner, records: int = RECORDS, workers: int = 1) -> None:
    """SIGKILL runs at random points of their writing, then let one run finish; the lake must hold `records` ids once each."""
    moments = random.Random(7).sample(range(2, 14), 5)
    killed = [_run_and_kill(tmp_path, new_files, workers) for new_files in moments]
    assert sum(killed) >= 3, f"the pipeline ended before most kills ({killed}); the input is too small to test recovery"
    mid_run = _lake_counts(tmp_path / "lake") if (tmp_path / "lake" / "events").exists() else (0, 0)

    loglake("run", "pipeline.yaml", "--recovery-dir", "recovery", "--snapshot-interval", "200ms", "--workers", str(workers))

    total, distinct = _lake_counts(tmp_path / "lake")
    assert (total, distinct) == (records, records), f"after kills at +{moments} files (lake held {mid_run} before the last run)"
    leftovers = [p.name for p in (tmp_path / "lake" / "events").rglob(".*inprogress")]
    assert leftovers == []


def test_a_finished_run_resumed_with_recovery_reads_nothing_again(tmp_path: Path, loglake: Runner) -> None:
    _write_events(tmp_path, 20_000)
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    loglake("run", "pipeline.yaml", "--recovery-dir", "recovery")
    loglake("run", "pipeline.yaml", "--recovery-dir", "recovery")
    assert _lake_counts(tmp_path / "lake") == (20_000, 20_000)


def test_sigterm_drains_and_commits_with_recovery_on(tmp_path: Path, loglake: Runner) -> None:
    _write_events(tmp_path, RECORDS)
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    command = loglake_command("run", "pipeline.yaml", "--recovery-dir", "recovery", "--snapshot-interval", "200ms")
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "lake").rglob("*.parquet")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # running (signal handlers installed) once the first snapshot has committed files
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    first_total, first_distinct = _lake_counts(tmp_path / "lake")
    assert first_total == first_distinct  # nothing doubled by the drain
    loglake("run", "pipeline.yaml", "--recovery-dir", "recovery")
    assert _lake_counts(tmp_path / "lake") == (RECORDS, RECORDS)
