"""A Kafka pipeline end to end: real log lines in, a lake out, failed records to a dead-letter topic."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
from confluent_kafka import Consumer, TopicPartition

from loglake.pipelines.broker import LocalBroker
from loglake.pipelines.produce_cli import produce_lines
from loglake.pipelines.runner import run_pipeline
from tests.support import APACHE_LOG

GARBAGE = [b"this is not an access log line", b'83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /cut-off', b"\x00\x01"]

PIPELINE = """\
pipeline: access-from-kafka
lake: lake
dead_letter: {{type: kafka, brokers: [{brokers}], topic: {dead_letters}}}
sources:
  access: {{type: kafka, brokers: [{brokers}], topics: [{topic}], group: loglake-access, stop_at: end}}
stages:
  parse: {{type: apache_combined}}
sinks:
  lake: {{type: parquet, dataset: access}}
"""


def _consume_all(brokers: str, topic: str, expected: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "reader", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    for _ in range(50):
        values.extend(message.value() for message in consumer.consume(1000, 0.2) if message.error() is None)
        if len(values) >= expected:
            break
    consumer.close()
    return values


def test_failed_records_go_to_a_dead_letter_topic_with_their_error_and_payload(
    tmp_path: Path, kafka_broker: LocalBroker, kafka_topic: Callable[..., str]
) -> None:
    topic, dead_letters = kafka_topic(), kafka_topic()
    lines = APACHE_LOG.read_bytes().splitlines()[:2000]
    produce_lines([*lines[:1000], *GARBAGE, *lines[1000:]], kafka_broker.bootstrap, topic)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE.format(brokers=kafka_broker.bootstrap, topic=topic, dead_letters=dead_letters))

    result = run_pipeline(pipeline)

    counts = {node.name: node.counts for node in result.nodes}
    assert counts["access"]["records_in"] == 2003
    lake = duckdb.sql(f"SELECT count(*), count(DISTINCT kafka_offset) FROM read_parquet('{tmp_path}/lake/access/**/*.parquet')").fetchall()
    assert lake == [(2000, 2000)]
    letters = [json.loads(value) for value in _consume_all(kafka_broker.bootstrap, dead_letters, 3)]
    assert sorted(letter["kafka_offset"] for letter in letters) == [1000, 1001, 1002]
    assert {letter["_error_node"] for letter in letters} == {"parse"}
    assert all(letter["_error"] for letter in letters)
    assert [letter["message"] for letter in sorted(letters, key=lambda x: x["kafka_offset"])][:2] == [g.decode() for g in GARBAGE[:2]]


def test_a_finished_run_commits_its_offsets_to_the_consumer_group(
    tmp_path: Path, kafka_broker: LocalBroker, kafka_topic: Callable[..., str]
) -> None:
    topic, dead_letters = kafka_topic(), kafka_topic()
    produce_lines(APACHE_LOG.read_bytes().splitlines()[:500], kafka_broker.bootstrap, topic)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE.format(brokers=kafka_broker.bootstrap, topic=topic, dead_letters=dead_letters))

    run_pipeline(pipeline)

    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": "loglake-access"})
    committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    consumer.close()
    assert committed[0].offset == 500
