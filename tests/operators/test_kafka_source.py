"""The `kafka` source on a real broker: formats and metadata, start rules, resume, bounded replay, bad messages, failures."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import loglake.operators.kafka  # noqa: F401  registers the `kafka` type
from loglake.operators.kafka.source import KafkaPartition, KafkaSource
from loglake.pipelines.broker import LocalBroker, free_port, start_broker
from loglake.pipelines.nodes import build_node
from loglake.schemas.connectors import EndOfInput
from loglake.schemas.errors import SpecError, TerminalError
from loglake.schemas.stage import NodeContext, NodeCounters
from tests.support import APACHE_LOG, drain

LINES = APACHE_LOG.read_bytes().splitlines()
EPOCH_MS = 1_431_857_103_000  # 2015-05-17T10:05:03Z, the first line's time


def _produce(bootstrap: str, topic: str, values: list[bytes | None], partition: int = 0, **per_message: list[Any]) -> None:
    """Send `values` in one go (lingering, so the broker stores them as few large record batches)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "logger": logging.getLogger("test-producer")})
    for index, value in enumerate(values):
        producer.produce(topic, value, partition=partition, **{name: items[index] for name, items in per_message.items()})
    assert producer.flush(10) == 0


def _source(bootstrap: str, topic: str, *options: str, node: str = "src") -> tuple[KafkaSource, NodeCounters]:
    snippet = "{" + ", ".join([f"type: kafka, brokers: ['{bootstrap}'], topics: ['{topic}']", *options]) + "}"
    ctx = NodeContext(node=node)
    source = build_node("source", node, yaml.safe_load(snippet), ctx)
    assert isinstance(source, KafkaSource)
    return source, ctx.counters


def _poll(partition: KafkaPartition, rows: int, timeout: float = 10.0) -> list[pa.RecordBatch]:
    """Batches of an unbounded partition until `rows` rows arrived."""
    batches: list[pa.RecordBatch] = []
    deadline = time.monotonic() + timeout
    while sum(b.num_rows for b in batches) < rows:
        assert time.monotonic() < deadline, f"only {sum(b.num_rows for b in batches)} of {rows} rows arrived"
        batch = partition.read()
        if batch is not None:
            batches.append(batch)
    return batches


def _column(batches: list[pa.RecordBatch], name: str) -> list[Any]:
    return [value for batch in batches for value in batch.column(name).to_pylist()]


def _text(lines: list[bytes]) -> list[str]:
    return [line.decode("utf-8") for line in lines]


@pytest.fixture
def topic(kafka_topic: Callable[..., str]) -> str:
    return kafka_topic()


def test_raw_messages_with_every_metadata_field(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    name = kafka_topic(partitions=2)
    for number in (0, 1):
        lines = LINES[number:1000:2]
        _produce(
            kafka_broker.bootstrap, name, list(lines), partition=number,
            key=[f"k{i}".encode() for i in range(len(lines))],
            headers=[[("host", b"web-1"), ("host", b"web-2"), ("raw", b"\xff")] if i == 0 else None for i in range(len(lines))],
            timestamp=[EPOCH_MS + 1000 * i for i in range(len(lines))],
        )
    source, counters = _source(kafka_broker.bootstrap, name, "stop_at: end", "fields: [topic, partition, offset, key, timestamp, headers]")
    assert source.partitions() == [f"{name}/0", f"{name}/1"]
    for number in (0, 1):
        partition = source.open(f"{name}/{number}", None)
        batches = drain(partition)
        partition.close()
        assert _column(batches, "message") == _text(LINES[number:1000:2])
        assert _column(batches, "kafka_offset") == list(range(500))
        assert set(_column(batches, "kafka_partition")) == {number}
        assert set(_column(batches, "kafka_topic")) == {name}
        assert _column(batches, "kafka_key")[:3] == ["k0", "k1", "k2"]
        stamps = _column(batches, "kafka_timestamp")
        assert stamps[0] == datetime(2015, 5, 17, 10, 5, 3, tzinfo=timezone.utc) and stamps[2] - stamps[0] == timedelta(seconds=2)
        headers = _column(batches, "kafka_headers")
        assert headers[0] == [{"key": "host", "value": b"web-1"}, {"key": "host", "value": b"web-2"}, {"key": "raw", "value": b"\xff"}]
        assert headers[1] == []
        assert batches[0].schema.field("kafka_timestamp").type == pa.timestamp("us", tz="UTC")
        declared = {name: kind for name, kind in source.output_types({}).items() if name != "_truncated"}  # no line was cut
        assert {field.name: field.type for field in batches[0].schema} == declared, "what validate assumes is what a read gives"
        assert partition.position() == 500
    assert counters["records_in"] == 1000


def test_default_fields_are_topic_partition_offset(kafka_broker: LocalBroker, topic: str) -> None:
    _produce(kafka_broker.bootstrap, topic, LINES[:3])
    source, _ = _source(kafka_broker.bootstrap, topic, "stop_at: end")
    batches = drain(source.open(f"{topic}/0", None))
    assert batches[0].schema.names == ["message", "kafka_topic", "kafka_partition", "kafka_offset"]
    assert "timestamp" not in batches[0].schema.names  # event time comes from stages


def test_json_values_become_columns_and_bad_ones_stay_as_rows_with_an_error(kafka_broker: LocalBroker, topic: str) -> None:
    good = [json.dumps({"clientip": line.split(b" ")[0].decode(), "bytes": i, "at": "2015-05-17T10:05:03Z", "http": {"status": 200}}).encode() for i, line in enumerate(LINES[:6])]
    bad = {2: b"GET /index.html", 4: b"[1, 2]", 5: b'{"truncated": ', 7: b'{"x": "caf\xe9"}', 8: None}
    values = list(good)
    for at, value in sorted(bad.items()):
        values.insert(at, value)
    _produce(kafka_broker.bootstrap, topic, values)
    source, counters = _source(kafka_broker.bootstrap, topic, "stop_at: end", "format: json", node="app")
    batches = drain(source.open(f"{topic}/0", None))
    assert _column(batches, "kafka_offset") == list(range(len(values)))
    errors = _column(batches, "_error")
    assert [at for at, error in enumerate(errors) if error is not None] == sorted(bad)
    assert set(_column(batches, "_error_node")) == {"app", None}
    assert errors[4] == "JSON array is not an object" and errors[2].startswith("invalid JSON: ")
    assert errors[8] == "the message has no value"
    messages = _column(batches, "message")
    assert [messages[at] for at in (2, 4, 5, 7)] == ["GET /index.html", "[1, 2]", '{"truncated": ', '{"x": "caf\ufffd"}']
    good_rows = [at for at in range(len(values)) if at not in bad]
    assert [_column(batches, "bytes")[at] for at in good_rows] == list(range(6))
    assert [_column(batches, "at")[at] for at in good_rows] == ["2015-05-17T10:05:03Z"] * 6  # ISO text stays text
    assert [_column(batches, "http")[at] for at in good_rows] == [{"status": 200}] * 6
    assert counters["invalid_json_messages"] == len(bad)


def test_clean_json_batches_have_no_error_columns(kafka_broker: LocalBroker, topic: str) -> None:
    _produce(kafka_broker.bootstrap, topic, [b'{"a": 1}', b'{"a": 2, "b": "x"}'])
    source, counters = _source(kafka_broker.bootstrap, topic, "stop_at: end", "format: json", "fields: []")
    batches = drain(source.open(f"{topic}/0", None))
    assert batches[0].schema.names == ["a", "b"]
    assert _column(batches, "a") == [1, 2] and _column(batches, "b") == [None, "x"]
    assert counters["invalid_json_messages"] == 0


def test_a_message_over_max_message_size_is_cut_and_flagged(kafka_broker: LocalBroker, topic: str) -> None:
    long_line = "é" * 100  # 200 bytes of two-byte characters
    _produce(kafka_broker.bootstrap, topic, [LINES[0][:50], long_line.encode(), LINES[1][:50]])
    source, counters = _source(kafka_broker.bootstrap, topic, "stop_at: end", "max_message_size: 101")
    batches = drain(source.open(f"{topic}/0", None))
    assert _column(batches, "message") == [LINES[0][:50].decode(), "é" * 50, LINES[1][:50].decode()]  # never half a character
    assert _column(batches, "_truncated") == [False, True, False]
    assert counters["truncated_messages"] == 1


def test_invalid_utf8_is_replaced_and_counted(kafka_broker: LocalBroker, topic: str) -> None:
    _produce(kafka_broker.bootstrap, topic, [b"ok", b"bad \xff byte", b"fine"])
    source, counters = _source(kafka_broker.bootstrap, topic, "stop_at: end")
    assert _column(drain(source.open(f"{topic}/0", None)), "message") == ["ok", "bad \ufffd byte", "fine"]
    assert counters["invalid_utf8_values"] == 1


@pytest.mark.parametrize("batch_size, batch_bytes", [(100, "4MiB"), (10_000, "10KiB"), (7, "1KiB")], ids=["100-messages", "10KiB", "7-or-1KiB"])
def test_batch_bounds(kafka_broker: LocalBroker, topic: str, batch_size: int, batch_bytes: str) -> None:
    _produce(kafka_broker.bootstrap, topic, LINES[:1000])
    source, _ = _source(kafka_broker.bootstrap, topic, "stop_at: end", f"batch_size: {batch_size}", f"batch_bytes: {batch_bytes}")
    batches = drain(source.open(f"{topic}/0", None))
    limit = int(batch_bytes[:-3]) * {"KiB": 1024, "MiB": 1024**2}[batch_bytes[-3:]]
    for batch in batches:
        assert batch.num_rows <= batch_size
        assert sum(len(m.encode()) for m in batch.column("message").to_pylist()) <= limit or batch.num_rows == 1
    assert _column(batches, "message") == _text(LINES[:1000])
    assert _column(batches, "kafka_offset") == list(range(1000))


def test_resume_continues_at_the_saved_position(kafka_broker: LocalBroker, topic: str) -> None:
    _produce(kafka_broker.bootstrap, topic, LINES[:300])
    source, _ = _source(kafka_broker.bootstrap, topic, "stop_at: end", "batch_size: 120")
    first = source.open(f"{topic}/0", None)
    head = _poll(first, 120)
    saved = json.loads(json.dumps(first.position()))
    first.close()
    assert saved == 120
    rest = drain(source.open(f"{topic}/0", saved))
    assert _column(head, "kafka_offset") + _column(rest, "kafka_offset") == list(range(300))
    assert _column(rest, "message") == _text(LINES[120:300])


def test_lag_counts_the_messages_each_open_partition_is_behind(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    name = kafka_topic(partitions=2)
    _produce(kafka_broker.bootstrap, name, LINES[:100])
    source, _ = _source(kafka_broker.bootstrap, name, "batch_size: 40")
    assert source.lag() == {}  # nothing open yet
    first, second = source.open(f"{name}/0", None), source.open(f"{name}/1", None)
    _poll(first, 40)
    assert source.lag()[f"{name}/0"] == 60
    deadline = time.monotonic() + 5
    while f"{name}/1" not in source.lag():  # left out until its first fetch answers
        assert time.monotonic() < deadline
        assert second.read() is None
    assert source.lag() == {f"{name}/0": 60, f"{name}/1": 0}
    first.close()
    assert list(source.lag()) == [f"{name}/1"]
    second.close()


def test_a_resume_position_that_is_not_an_offset_is_refused(kafka_broker: LocalBroker, topic: str) -> None:
    source, _ = _source(kafka_broker.bootstrap, topic)
    with pytest.raises(TerminalError, match=r"src: cannot resume .*/0 from \{'inode': 1\}: not a Kafka offset"):
        source.open(f"{topic}/0", {"inode": 1})


def test_start_latest_reads_only_messages_sent_after_opening(kafka_broker: LocalBroker, topic: str) -> None:
    _produce(kafka_broker.bootstrap, topic, LINES[:50])  # one record batch: the test broker's ListOffsets says 1
    source, _ = _source(kafka_broker.bootstrap, topic, "start: latest")
    partition = source.open(f"{topic}/0", None)
    assert partition.position() == 50
    started = time.monotonic()
    assert partition.read() is None
    assert time.monotonic() - started < 1.0  # an idle poll returns (contract: never blocks long)
    _produce(kafka_broker.bootstrap, topic, LINES[50:55])
    batches = _poll(partition, 5)
    assert _column(batches, "message") == _text(LINES[50:55])
    assert _column(batches, "kafka_offset") == list(range(50, 55))
    partition.close()


def test_start_at_a_time_skips_older_messages(kafka_broker: LocalBroker, topic: str) -> None:
    _produce(kafka_broker.bootstrap, topic, LINES[:100], timestamp=[EPOCH_MS + 1000 * i for i in range(100)])
    source, _ = _source(kafka_broker.bootstrap, topic, "stop_at: end", "start: '2015-05-17T10:05:33Z'")
    partition = source.open(f"{topic}/0", None)
    batches = drain(partition)
    assert _column(batches, "kafka_offset") == list(range(30, 100))
    assert partition.position() == 100


def test_start_after_the_last_message_reads_nothing(kafka_broker: LocalBroker, topic: str) -> None:
    _produce(kafka_broker.bootstrap, topic, LINES[:10], timestamp=[EPOCH_MS + i for i in range(10)])
    source, _ = _source(kafka_broker.bootstrap, topic, "stop_at: end", "start: 2030-01-01T00:00:00+01:00")
    partition = source.open(f"{topic}/0", None)
    assert drain(partition) == []
    assert partition.position() == 10


def test_group_committed_offsets_are_where_a_partition_without_checkpoint_starts(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    name = kafka_topic(partitions=2)
    for number in (0, 1):
        _produce(kafka_broker.bootstrap, name, LINES[:60], partition=number)
    group = f"group-{name}"
    source, _ = _source(kafka_broker.bootstrap, name, f"group: {group}", "stop_at: end")
    source.commit_offsets({f"{name}/0": 40})
    _wait_committed(kafka_broker.bootstrap, group, TopicPartition(name, 0), 40)
    assert _column(drain(source.open(f"{name}/0", None)), "kafka_offset") == list(range(40, 60))
    assert _column(drain(source.open(f"{name}/1", None)), "kafka_offset") == list(range(60))  # nothing committed: `start`
    assert _column(drain(source.open(f"{name}/0", 55)), "kafka_offset") == list(range(55, 60))  # a checkpoint wins


def test_commit_offsets_without_a_group_commits_nothing(kafka_broker: LocalBroker, topic: str) -> None:
    source, _ = _source(kafka_broker.bootstrap, topic)
    source.commit_offsets({f"{topic}/0": 3})  # no group: a no-op, not an error
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": "loglake-src"})
    assert consumer.committed([TopicPartition(topic, 0)], timeout=5)[0].offset < 0
    consumer.close()


def _wait_committed(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        deadline = time.monotonic() + 10
        while consumer.committed([tp], timeout=5)[0].offset != offset:
            assert time.monotonic() < deadline, "the commit never arrived"
            time.sleep(0.05)
    finally:
        consumer.close()


def test_stop_at_end_stops_at_the_end_found_when_opened(kafka_broker: LocalBroker, topic: str) -> None:
    _produce(kafka_broker.bootstrap, topic, LINES[:100])  # one record batch: ListOffsets on the test broker says 1
    source, _ = _source(kafka_broker.bootstrap, topic, "stop_at: end")
    partition = source.open(f"{topic}/0", None)
    _produce(kafka_broker.bootstrap, topic, LINES[100:110])
    batches = drain(partition)
    assert _column(batches, "kafka_offset") == list(range(100))
    assert partition.position() == 100
    with pytest.raises(EndOfInput):
        partition.read()  # stays ended


def test_stop_at_end_of_an_empty_partition_ends_at_once(kafka_broker: LocalBroker, topic: str) -> None:
    source, _ = _source(kafka_broker.bootstrap, topic, "stop_at: end")
    partition = source.open(f"{topic}/0", None)
    with pytest.raises(EndOfInput):
        partition.read()
    assert partition.position() == 0


def test_topic_pattern_is_resolved_against_the_cluster(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    first, second = kafka_topic(partitions=2), kafka_topic()
    other = kafka_topic(name=f"other-{first}")
    prefix = first.rsplit("-", 1)[0]
    snippet = {"type": "kafka", "brokers": [kafka_broker.bootstrap], "topic_pattern": re.escape(prefix) + "-[0-9a-f]{8}"}
    source = build_node("source", "src", snippet, NodeContext(node="src"))
    assert sorted(source.partitions()) == sorted([f"{first}/0", f"{first}/1", f"{second}/0"])
    assert not any(name.startswith(other) for name in source.partitions())


def test_a_missing_topic_is_named_with_a_suggestion(kafka_broker: LocalBroker, topic: str) -> None:
    source, _ = _source(kafka_broker.bootstrap, topic[:-1] + "x")
    with pytest.raises(TerminalError) as caught:
        source.partitions()
    message = str(caught.value)
    assert message.startswith(f"src: topic '{topic[:-1]}x' does not exist on {kafka_broker.bootstrap}; did you mean '{topic}'?")
    assert "existing topics: " in message


def test_a_pattern_matching_nothing_lists_the_topics(kafka_broker: LocalBroker, topic: str) -> None:
    source = build_node("source", "src", {"type": "kafka", "brokers": [kafka_broker.bootstrap], "topic_pattern": "nothing-.*"}, NodeContext(node="src"))
    with pytest.raises(TerminalError, match=r"topic_pattern 'nothing-\.\*' matches no topic on .*; existing topics: .*"):
        source.partitions()


def test_an_unreachable_broker_stops_with_the_brokers_named(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    source, _ = _source(address, "access", "connect_timeout: 1500ms")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="loglake.operators.kafka"), pytest.raises(TerminalError) as caught:
        source.partitions()
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith(f"src: cannot list the topics: no answer from the brokers {address} within 1.5s (last problem: ")
    assert "Connection refused" in message
    warnings = [record.getMessage() for record in caplog.records]
    assert sum("retrying with backoff for up to 1.5s" in message for message in warnings) == 1  # once per streak
    assert sum(message.startswith("src: kafka: ") for message in warnings) == 1  # librdkafka retried many times: rate-limited
    assert "rdkafka#consumer" not in capfd.readouterr().err  # librdkafka's own lines go through logging, not stderr


def test_reading_survives_a_broker_restart_on_the_same_port(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    broker = start_broker()
    port = broker.port
    quick = "options: {reconnect.backoff.max.ms: 200, topic.metadata.refresh.interval.ms: 500}"  # librdkafka's waits, shortened
    try:
        _create(broker, "restart")
        _produce(broker.bootstrap, "restart", [b"before 1", b"before 2"])
        source, _ = _source(broker.bootstrap, "restart", quick)
        partition = source.open("restart/0", None)
        assert _column(_poll(partition, 2), "message") == ["before 1", "before 2"]
        broker.stop()
        with caplog.at_level(logging.WARNING, logger="loglake.operators.kafka"):
            for _ in range(10):
                assert partition.read() is None  # the broker is gone: nothing to read, no crash
            broker = start_broker(port=port)  # the same address, and empty: Tansu keeps nothing
            _create(broker, "restart")
            _produce(broker.bootstrap, "restart", [b"after 1", b"after 2", b"after 3", b"after 4"])
            batches = _poll(partition, 2)
        # The consumer goes on at its position, offset 2. (Kafka would answer OFFSET_OUT_OF_RANGE for an offset
        # past a recreated log's end and the source would read it from the start, warning that it went back;
        # Tansu answers with nothing, so the messages below the old position are not read.)
        assert _column(batches, "message") == ["after 3", "after 4"]
        assert _column(batches, "kafka_offset") == [2, 3]
        assert partition.position() == 4
        assert any(record.getMessage().startswith("src: kafka: ") for record in caplog.records)  # librdkafka's complaints, as WARNINGs
        assert "rdkafka#consumer" not in capfd.readouterr().err
        partition.close()
    finally:
        broker.stop()


def _create(broker: LocalBroker, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "logger": logging.getLogger("test-admin")})
    for future in admin.create_topics([NewTopic(name, 1, 1)]).values():
        future.result(timeout=10)


@pytest.mark.parametrize(
    "options, path, message",
    [
        ("options: {group.id: mine}", "options", "'group.id' is set by loglake; use the `group` key"),
        ("options: {enable.auto.commit: true}", "options", "'enable.auto.commit' is set by loglake; loglake commits offsets itself"),
        ("options: {sasl.mechansim: PLAIN}", "options", 'librdkafka refuses these settings: No such configuration property: "sasl.mechansim"'),
        ("options: {fetch.wait.max.ms: soon}", "options", 'librdkafka refuses these settings: Invalid value for configuration property "fetch.wait.max.ms"'),
        ("topic_pattern: 'web-.*'", "", "give exactly one of 'topics' and 'topic_pattern'"),
        ("start: beginning", "start", "'beginning' is not earliest, latest or an ISO-8601 time"),
        ("poll_timeout: 1s", "poll_timeout", "1000ms is too long; at most 100ms"),
        ("fields: [topic, lag]", "fields[1]", "Input should be 'key', 'topic', 'partition', 'offset', 'timestamp' or 'headers'"),
        ("prefetch_bytes: 512KiB", "prefetch_bytes", "Input should be greater than or equal to 1048576"),
        ("prefetch_bytes: 5GiB", "prefetch_bytes", "Input should be less than or equal to 4294967296"),
    ],
    ids=["owned-group", "owned-commit", "unknown-option", "bad-option-value", "topics-and-pattern", "bad-start", "long-poll", "bad-field",
         "small-prefetch", "large-prefetch"],
)
def test_bad_config_names_the_field(options: str, path: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        _source("localhost:9092", "access", options)
    assert len(caught.value.issues) == 1, caught.value.render()
    issue = caught.value.issues[0]
    assert issue.node == "src" and issue.node_type == "kafka"
    assert issue.dotted_path == path
    assert message in issue.message


def test_construction_needs_no_broker() -> None:
    source, _ = _source(f"127.0.0.1:{free_port()}", "access", "group: g")  # `loglake validate` builds sources offline
    assert source.config.group == "g"
    comma_separated = build_node("source", "src", {"type": "kafka", "brokers": "a:1, b:2", "topics": ["x"]}, NodeContext(node="src"))
    assert comma_separated.config.brokers == ["a:1", "b:2"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_a_compressed_batch_larger_than_a_fetch_is_read_whole(kafka_broker: LocalBroker, kafka_topic: Callable[..., str], codec: str) -> None:
    """Another producer's record batches may inflate far beyond a fetch's share of `prefetch_bytes` (1/32 on the
    wire, which also caps librdkafka's `message.max.bytes`): the whole 2.3 MB log produced lingering into batches
    of up to 8 MiB, in each codec, read with the default budget, arrives whole and in order."""
    topic = kafka_topic(name=f"big-{codec}-{time.monotonic_ns()}")
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap, "compression.type": codec, "linger.ms": 500,
                         "batch.size": 8 << 20, "message.max.bytes": 16 << 20, "logger": logging.getLogger("test-producer")})
    for line in LINES:
        producer.produce(topic, line, partition=0)
    assert producer.flush(10) == 0
    source, _ = _source(kafka_broker.bootstrap, topic, "stop_at: end")
    assert _column(drain(source.open(f"{topic}/0", None), timeout=30), "message") == _text(LINES)
