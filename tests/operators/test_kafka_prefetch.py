"""`prefetch_bytes` on a real broker: a partition's consumer stops fetching at its queue limits, and still reads everything."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer

import loglake.operators.kafka  # noqa: F401  registers the `kafka` type
from loglake.operators.kafka.client import KafkaLog
from loglake.operators.kafka.prefetch import consumer_tuning, queue_limits
from loglake.operators.kafka.source import KafkaPartition, KafkaSource
from loglake.pipelines.broker import LocalBroker
from loglake.pipelines.nodes import build_node
from loglake.schemas.connectors import EndOfInput
from loglake.schemas.stage import NodeContext
from tests.support import APACHE_LOG

LINES = APACHE_LOG.read_bytes().splitlines()
PREFETCH = 1 << 20
"""`prefetch_bytes` of the partitions read here: the smallest allowed."""
PRODUCER_BATCH = 16 << 10
"""The test producer's largest record batch: a fetch may bring one whole batch beyond its size."""


def _produce_uncompressed(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Small uncompressed record batches, so one fetch brings at most its size plus one batch of keys and values."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": PRODUCER_BATCH, "logger": logging.getLogger("test-producer")})
    for value in values:
        producer.produce(topic, value, partition=0)
    assert producer.flush(10) == 0


def _partition_with_stats(bootstrap: str, topic: str, stats: list[dict[str, Any]]) -> KafkaPartition:
    """Partition 0 read with `prefetch_bytes: PREFETCH` by a consumer that also reports librdkafka's statistics into `stats`."""
    ctx = NodeContext(node="src")
    snippet = f"{{type: kafka, brokers: ['{bootstrap}'], topics: ['{topic}'], stop_at: end, prefetch_bytes: {PREFETCH}, batch_size: 1}}"
    source = build_node("source", "src", yaml.safe_load(snippet), ctx)
    assert isinstance(source, KafkaSource)
    kafka_log = KafkaLog("src")
    settings = {**source.settings(kafka_log), "statistics.interval.ms": 100, "stats_cb": lambda text: stats.append(json.loads(text))}
    return KafkaPartition(source.config, ctx, settings, kafka_log, topic, 0, None)


def _messages(partition: KafkaPartition) -> list[bytes]:
    """The values of one `read` (none when nothing arrived in time)."""
    batch = partition.read()
    return [] if batch is None else [text.encode() for text in batch.column("message").to_pylist()]


def _settled_fetches(partition: KafkaPartition, stats: list[dict[str, Any]], topic: str, read: list[bytes], timeout: float = 10.0) -> dict[str, Any]:
    """librdkafka's statistics of the partition once it stopped fetching (the same count fetched twice, half a second apart).

    Each `read` (of one message: `batch_size: 1`, kept in `read`) also serves the statistics callbacks.
    """
    deadline = time.monotonic() + timeout
    previous = -1
    while time.monotonic() < deadline:
        time.sleep(0.5)
        read += _messages(partition)
        if not stats:
            continue
        figures = stats[-1]["topics"][topic]["partitions"]["0"]
        if figures["rxmsgs"] == previous and previous > 0:
            return dict(figures)
        previous = figures["rxmsgs"]
    raise AssertionError(f"fetching did not pause within {timeout:g}s")


def _read_rest(partition: KafkaPartition, read: list[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            read += _messages(partition)
        except EndOfInput:
            return
    raise AssertionError(f"only {len(read)} messages arrived within {timeout:g}s")


@pytest.mark.parametrize(
    "values, binding",
    [(LINES[:5000], "messages"), ([line.ljust(2048, b".") for line in LINES[:1000]], "bytes")],
    ids=["log-lines-stop-at-the-message-count", "2KiB-values-stop-at-the-bytes"],
)
def test_fetching_pauses_at_the_queue_limits(kafka_broker: LocalBroker, kafka_topic: Callable[..., str], values: list[bytes], binding: str) -> None:
    topic = kafka_topic()
    _produce_uncompressed(kafka_broker.bootstrap, topic, values)
    stats: list[dict[str, Any]] = []
    read: list[bytes] = []
    partition = _partition_with_stats(kafka_broker.bootstrap, topic, stats)
    try:
        fetched = _settled_fetches(partition, stats, topic, read)
        taken = list(read)  # read while the queue filled: fetching resumes whenever they bring it below a limit
        _read_rest(partition, read)
    finally:
        partition.close()
    queued_bytes, queued_messages = queue_limits(PREFETCH)
    one_fetch = consumer_tuning(PREFETCH)["fetch.max.bytes"] + PRODUCER_BATCH
    assert fetched["rxmsgs"] < len(values) // 2  # fetching paused well before the end of the partition
    assert fetched["rxbytes"] <= queued_bytes + sum(map(len, taken)) + one_fetch
    assert fetched["rxmsgs"] <= queued_messages + len(taken) + one_fetch // min(map(len, values))
    if binding == "messages":  # ~230-byte lines: the count binds long before their bytes would
        assert fetched["rxmsgs"] >= queued_messages and fetched["rxbytes"] < queued_bytes
    else:
        assert fetched["rxbytes"] >= queued_bytes and fetched["rxmsgs"] < queued_messages
    assert read == values  # and every message still arrives, in order


def test_a_message_larger_than_a_fetch_arrives_whole(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic()
    large = LINES[0].ljust(200_000, b".")
    assert len(large) > 6 * consumer_tuning(PREFETCH)["fetch.max.bytes"]  # the broker sends it whole all the same
    _produce_uncompressed(kafka_broker.bootstrap, topic, [LINES[1], large, LINES[2]])
    read: list[bytes] = []
    partition = _partition_with_stats(kafka_broker.bootstrap, topic, [])
    try:
        _read_rest(partition, read)
    finally:
        partition.close()
    assert read == [LINES[1], large, LINES[2]]


@pytest.mark.parametrize("size", ["1MiB", "16MiB", "4GiB"])
def test_librdkafka_takes_the_settings_of_every_allowed_size(size: str) -> None:
    ctx = NodeContext(node="src")  # building the source checks its settings with librdkafka (offline)
    source = build_node("source", "src", {"type": "kafka", "topics": ["access"], "prefetch_bytes": size}, ctx)
    assert isinstance(source, KafkaSource)
    settings = source.settings(KafkaLog("src"))
    assert settings["fetch.max.bytes"] >= settings["message.max.bytes"]
