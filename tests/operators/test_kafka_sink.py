"""The `kafka` sink on a real broker: JSON and raw values, keys, per-record topics, codecs, dead letters, failures."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

import loglake.operators.kafka  # noqa: F401  registers the `kafka` type
from loglake.operators.kafka.sink import KafkaSink
from loglake.pipelines.broker import LocalBroker, free_port
from loglake.pipelines.nodes import build_node
from loglake.schemas.connectors import PartitionedSink, SnapshottingWriter
from loglake.schemas.errors import SpecError, TerminalError
from loglake.schemas.stage import NodeContext
from tests.support import APACHE_LOG, batch_of

LINES = APACHE_LOG.read_text(encoding="utf-8").splitlines()


def _sink(bootstrap: str, *options: str, node: str = "out") -> KafkaSink:
    snippet = "{" + ", ".join([f"type: kafka, brokers: ['{bootstrap}']", *options]) + "}"
    sink = build_node("sink", node, yaml.safe_load(snippet), NodeContext(node=node))
    assert isinstance(sink, KafkaSink)
    return sink


def _consume(bootstrap: str, topic: str, count: int, partitions: int = 1, timeout: float = 10.0) -> list[Any]:
    """`count` messages of `topic` (from every partition, each in offset order), with a bare consumer."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-sink", "logger": logging.getLogger("test-consumer")})
    consumer.assign([TopicPartition(topic, number, 0) for number in range(partitions)])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < count:
            assert time.monotonic() < deadline, f"only {len(messages)} of {count} messages arrived"
            messages.extend(m for m in consumer.consume(1000, 0.1) if m.error() is None)
        extra = [m for m in consumer.consume(10, 0.3) if m.error() is None]
        assert extra == [], "more messages than expected"
    finally:
        consumer.close()
    return messages


def test_json_records_become_one_object_per_message(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic()
    batch = pa.RecordBatch.from_pydict(
        {
            "timestamp": pa.array([datetime(2015, 5, 17, 10, 5, 3, tzinfo=timezone.utc), None], pa.timestamp("ns", tz="UTC")),
            "message": LINES[:2],
            "response": [200, 404],
            "geo": [{"country": "NL", "city": None}, None],
            "raw": pa.array([b"\x00\xff", None], pa.binary()),
        }
    )
    writer = _sink(kafka_broker.bootstrap, f"topic: {topic}").open(0, 1)
    writer.write(batch)
    writer.close()
    values = [json.loads(m.value()) for m in _consume(kafka_broker.bootstrap, topic, 2)]
    assert values == [
        {"timestamp": "2015-05-17T10:05:03Z", "message": LINES[0], "response": 200, "geo": {"country": "NL", "city": None}, "raw": "AP8="},
        {"timestamp": None, "message": LINES[1], "response": 404, "geo": None, "raw": None},
    ]


def test_raw_values_and_keys_come_from_columns(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic(partitions=3)
    hosts = [line.split(" ")[0] for line in LINES[:300]]
    writer = _sink(kafka_broker.bootstrap, f"topic: {topic}", "format: raw", "key_field: clientip").open(0, 1)
    for start in range(0, 300, 100):
        writer.write(batch_of(message=LINES[start : start + 100], clientip=hosts[start : start + 100]))
    writer.close()
    messages = _consume(kafka_broker.bootstrap, topic, 300, partitions=3)
    assert sorted(m.value().decode() for m in messages) == sorted(LINES[:300])
    assert all(m.key().decode() == m.value().decode().split(" ")[0] for m in messages)
    partition_of = {}
    for m in messages:  # the same key always lands in the same partition, in order
        assert partition_of.setdefault(m.key(), m.partition()) == m.partition()
    by_key = [m.value().decode() for m in messages if m.key() == b"83.149.9.216"]
    assert by_key == [line for line in LINES[:300] if line.startswith("83.149.9.216 ")]


def test_raw_format_sends_the_named_field_and_numbers_as_text(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic()
    writer = _sink(kafka_broker.bootstrap, f"topic: {topic}", "format: raw", "field: status", "key_field: status").open(0, 1)
    writer.write(batch_of(status=[200, 503], message=["a", "b"]))
    writer.close()
    messages = _consume(kafka_broker.bootstrap, topic, 2)
    assert [(m.key(), m.value()) for m in messages] == [(b"200", b"200"), (b"503", b"503")]


def test_topic_field_sends_each_record_to_its_own_topic(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    errors, access = kafka_topic(), kafka_topic()
    writer = _sink(kafka_broker.bootstrap, "topic_field: route", "format: raw").open(0, 1)
    writer.write(batch_of(message=["e1", "a1", "e2", "a2", "a3"], route=[errors, access, errors, access, access]))
    writer.close()
    assert [m.value() for m in _consume(kafka_broker.bootstrap, errors, 2)] == [b"e1", b"e2"]
    assert [m.value() for m in _consume(kafka_broker.bootstrap, access, 3)] == [b"a1", b"a2", b"a3"]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_every_compression_codec_round_trips(kafka_broker: LocalBroker, kafka_topic: Callable[..., str], codec: str) -> None:
    topic = kafka_topic(name=f"codec-{codec}-{time.monotonic_ns()}")
    writer = _sink(kafka_broker.bootstrap, f"topic: {topic}", "format: raw", f"compression: {codec}").open(0, 1)
    writer.write(batch_of(message=LINES[:500]))
    writer.close()
    assert [m.value().decode() for m in _consume(kafka_broker.bootstrap, topic, 500)] == LINES[:500]


def test_dead_letters_keep_their_error_and_original_fields(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic()
    failed = batch_of(
        message=[LINES[0], "GET / HTTP/1.1"],
        source=["/var/log/access.log", "/var/log/access.log"],
        _line=[1, 2],
        _error=["timestamp: '17/May/2015' does not match the format", "no grok pattern matched"],
        _error_node=["when", "parse"],
    )
    writer = _sink(kafka_broker.bootstrap, f"topic: {topic}", node="dead_letter").open(0, 1)
    writer.write(failed)
    writer.close()
    values = [json.loads(m.value()) for m in _consume(kafka_broker.bootstrap, topic, 2)]
    assert values == failed.to_pylist()


def test_a_snapshot_returns_once_everything_written_is_delivered(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic()
    sink = _sink(kafka_broker.bootstrap, f"topic: {topic}", "format: raw", "linger: 5s")  # left alone, nothing would go for 5 s
    assert isinstance(sink, PartitionedSink)
    writer = sink.open_partition("0", None)
    assert isinstance(writer, SnapshottingWriter)
    writer.write(batch_of(message=LINES[:100]))
    started = time.monotonic()
    assert writer.snapshot() == {"sent": 100}
    assert time.monotonic() - started < 4  # it did not wait for the linger: a flush sends at once
    assert [m.value().decode() for m in _consume(kafka_broker.bootstrap, topic, 100)] == LINES[:100]
    writer.write(batch_of(message=LINES[100:110]))
    writer.close()
    assert len(_consume(kafka_broker.bootstrap, topic, 110)) == 110


def test_a_full_local_queue_waits_instead_of_dropping(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic()
    writer = _sink(kafka_broker.bootstrap, f"topic: {topic}", "format: raw", "linger: 0ms", "options: {queue.buffering.max.messages: 10}").open(0, 1)
    writer.write(batch_of(message=LINES[:1000]))  # librdkafka refuses the 11th until some are delivered
    writer.close()
    assert [m.value().decode() for m in _consume(kafka_broker.bootstrap, topic, 1000)] == LINES[:1000]


def test_an_empty_batch_sends_nothing(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic()
    writer = _sink(kafka_broker.bootstrap, f"topic: {topic}").open(0, 1)
    writer.write(pa.RecordBatch.from_pydict({}))
    writer.write(batch_of(message=["only"]))
    writer.close()
    assert [json.loads(m.value()) for m in _consume(kafka_broker.bootstrap, topic, 1)] == [{"message": "only"}]


NO_AUTO_CREATE = "options: {allow.auto.create.topics: false, message.timeout.ms: 1000}"
"""The test broker creates topics a producer asks about; a producer that does not ask cannot deliver to a missing one."""


def test_a_failed_delivery_stops_the_run_at_close(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    missing = f"{kafka_topic()}-missing"
    writer = _sink(kafka_broker.bootstrap, f"topic: {missing}", NO_AUTO_CREATE).open(0, 1)
    writer.write(batch_of(message=["lost?", "never"]))
    with pytest.raises(TerminalError) as caught:
        writer.close()
    assert str(caught.value) == f"out: 2 message(s) could not be delivered to topic '{missing}' after retries: Local: Message timed out"


def test_a_failed_delivery_is_raised_by_the_next_write(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    missing = f"{kafka_topic()}-missing"
    writer = _sink(kafka_broker.bootstrap, f"topic: {missing}", NO_AUTO_CREATE).open(0, 1)
    writer.write(batch_of(message=["lost?"]))
    deadline = time.monotonic() + 10
    with pytest.raises(TerminalError, match=f"1 message\\(s\\) could not be delivered to topic '{missing}'"):
        while time.monotonic() < deadline:  # once librdkafka gives up (message.timeout.ms), even a tick reports it
            writer.write(pa.RecordBatch.from_pydict({}))
            time.sleep(0.05)
    writer.abort()


def test_a_flush_that_cannot_finish_says_how_many_were_not_delivered(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    missing = f"{kafka_topic()}-missing"
    options = "options: {allow.auto.create.topics: false, message.timeout.ms: 30000}"
    writer = _sink(kafka_broker.bootstrap, f"topic: {missing}", options, "flush_timeout: 300ms").open(0, 1)
    writer.write(batch_of(message=["a", "b", "c"]))
    with pytest.raises(TerminalError, match=rf"out: 3 message\(s\) to topic '{missing}' were not delivered within 0.3s"):
        writer.close()


def test_an_unreachable_broker_stops_the_writer_with_the_brokers_named() -> None:
    address = f"127.0.0.1:{free_port()}"
    sink = _sink(address, "topic: alerts", "connect_timeout: 1s")  # construction connects nowhere
    started = time.monotonic()
    with pytest.raises(TerminalError, match=rf"^out: cannot reach the cluster: no answer from the brokers {address} within 1s"):
        sink.open(0, 1)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "options, batch, message",
    [
        ("key_field: user", batch_of(message=["x"]), "key_field 'user' is not a column of the records (columns: message)"),
        ("topic_field: route", batch_of(message=["x"], route=[None]), "record 1 of a batch has no topic in topic_field 'route'"),
        ("format: raw", batch_of(msg=["x"]), "field 'message' is not a column of the records (columns: msg)"),
    ],
    ids=["missing-key-column", "null-topic", "missing-raw-field"],
)
def test_records_the_sink_cannot_send_stop_it_with_a_clear_message(kafka_broker: LocalBroker, options: str, batch: pa.RecordBatch, message: str) -> None:
    topic = "" if "topic_field" in options else "topic: unused, "
    writer = _sink(kafka_broker.bootstrap, topic + options if topic else options).open(0, 1)
    with pytest.raises(TerminalError) as caught:
        writer.write(batch)
    assert str(caught.value) == f"out: {message}"
    writer.abort()


@pytest.mark.parametrize(
    "options, path, message",
    [
        ("topic: a, topic_field: b", "", "give exactly one of 'topic' and 'topic_field'"),
        ("topic: a, field: line", "", "'field' applies to format: raw only"),
        ("topic: a, options: {acks: '1'}", "options", "'acks' is set by loglake; the sink always waits for all in-sync replicas"),
        ("topic: a, options: {linger.mss: 5}", "options", 'No such configuration property: "linger.mss"'),
        ("topic: a, options: {max.in.flight: 20}", "options", "`max.in.flight` must be set <= 5 when `enable.idempotence` is true"),
        ("topic: a, compression: brotli", "compression", "Input should be 'none', 'gzip', 'snappy', 'lz4' or 'zstd'"),
    ],
    ids=["topic-and-field", "field-with-json", "owned-acks", "unknown-option", "conflicts-with-idempotence", "bad-codec"],
)
def test_bad_config_names_the_field(options: str, path: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        build_node("sink", "out", yaml.safe_load("{type: kafka, " + options + "}"), NodeContext(node="out"))
    assert len(caught.value.issues) == 1, caught.value.render()
    issue = caught.value.issues[0]
    assert (issue.node, issue.node_type, issue.dotted_path) == ("out", "kafka", path)
    assert message in issue.message


def test_the_design_example_needs_no_brokers_key() -> None:
    sink = build_node("sink", "alerts", {"type": "kafka", "inputs": ["split.errors"], "topic": "nginx-errors"}, NodeContext(node="alerts"))
    assert sink.config.brokers == ["localhost:9092"]
