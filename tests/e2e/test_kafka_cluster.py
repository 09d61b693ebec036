"""Scale-out and the Kafka path end to end: two processes × two workers share a 4-partition topic."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from loglake.pipelines.broker import LocalBroker, free_port
from loglake.pipelines.produce_cli import produce_lines
from tests.e2e.conftest import loglake_command

pytestmark = pytest.mark.e2e

MESSAGES = 40_000

PIPELINE = """\
pipeline: cluster
lake: lake
sources:
  events:
    type: kafka
    brokers: [{brokers}]
    topics: [{topic}]
    format: json
    stop_at: end
    fields: [topic, partition, offset]
stages:
  typed: {{type: eval, fields: {{timestamp: "CAST(ts AS TIMESTAMPTZ)"}}, remove: [ts]}}
sinks:
  lake: {{type: parquet, dataset: events, partition_by: [date, hour]}}
"""


def _produce(broker: LocalBroker, topic: str, partitions: int) -> None:
    """A quarter of the messages to each partition (the default partitioner may leave one empty)."""
    for partition in range(partitions):
        ids = range(partition, MESSAGES, partitions)
        lines = (b'{"id":%d,"ts":"2024-03-01T%02d:%02d:00Z","message":"event %d"}' % (i, 10 + i % 3, i % 60, i) for i in ids)
        produce_lines(lines, broker.bootstrap, topic, partition=partition)


def test_two_processes_of_two_workers_write_every_message_exactly_once(
    tmp_path: Path, kafka_broker: LocalBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(partitions=4)
    _produce(kafka_broker, topic, 4)
    (tmp_path / "pipeline.yaml").write_text(PIPELINE.format(brokers=kafka_broker.bootstrap, topic=topic))
    addresses = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"

    processes = [
        subprocess.Popen(
            loglake_command("run", "pipeline.yaml", "--workers", "2", "--process-id", str(index), "--addresses", addresses),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    outputs = [process.communicate(timeout=180) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr

    files = f"read_parquet('{tmp_path}/lake/events/**/*.parquet', hive_partitioning = true)"
    rows = duckdb.sql(f"SELECT count(*), count(DISTINCT id), count(DISTINCT (kafka_partition, kafka_offset)) FROM {files}").fetchall()
    assert rows == [(MESSAGES, MESSAGES, MESSAGES)]
    per_partition = duckdb.sql(f"SELECT kafka_partition, count(*) FROM {files} GROUP BY 1 ORDER BY 1").fetchall()
    assert per_partition == [(partition, MESSAGES // 4) for partition in range(4)]
    writers = {path.name.split("-")[2] for path in (tmp_path / "lake" / "events").rglob("*.parquet")}
    assert len(writers) >= 2, f"one writer did everything: {writers}"
