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


def _write_events(folder: Path, count: int) -> None:
    (folder / "events.jsonl").write_bytes(b"\n".join(_events(count)) + b"\n")


def _lake_counts(lake: Path) -> tuple[int, int]:
    rows = duckdb.sql(
        f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{lake}/events/**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    return int(rows[0][0]), int(rows[0][1])


def _committed_files(folder: Path) -> int:
    return sum(1 for _ in (folder / "lake" / "events").rglob("*.parquet")) if (folder / "lake" / "events").exists() else 0


def _run_and_kill(folder: Path, new_files: int) -> bool:
    """Start `loglake run` with recovery and SIGKILL it once `new_files` more files were committed.

    Whether it was killed mid-run (rather than finishing first). Waiting for files, not seconds, puts the
    kill in the middle of writing however fast the machine is.
    """
    before = _committed_files(folder)
    command = loglake_command("run", "pipeline.yaml", "--recovery-dir", "recovery", "--snapshot-interval", "100ms")
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


def _kill_repeatedly_then_finish(tmp_path: Path, loglake: Runner) -> None:
    """SIGKILL runs at random points of their writing, then let one run finish; the lake must be exact."""
    moments = random.Random(7).sample(range(2, 14), 5)
    killed = [_run_and_kill(tmp_path, new_files) for new_files in moments]
    assert sum(killed) >= 3, f"the pipeline ended before most kills ({killed}); the input is too small to test recovery"
    mid_run = _lake_counts(tmp_path / "lake") if (tmp_path / "lake" / "events").exists() else (0, 0)

    loglake("run", "pipeline.yaml", "--recovery-dir", "recovery", "--snapshot-interval", "200ms")

    total, distinct = _lake_counts(tmp_path / "lake")
    assert (total, distinct) == (RECORDS, RECORDS), f"after kills at +{moments} files (lake held {mid_run} before the last run)"
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
    time.sleep(2.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    first_total, first_distinct = _lake_counts(tmp_path / "lake")
    assert first_total == first_distinct  # nothing doubled by the drain
    loglake("run", "pipeline.yaml", "--recovery-dir", "recovery")
    assert _lake_counts(tmp_path / "lake") == (RECORDS, RECORDS)
