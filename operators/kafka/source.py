"""The `kafka` source: one partition per topic partition (`<topic>/<partition>`), each read by its own consumer.

Partitions are assigned by loglake (the engine spreads them over workers), never by a consumer group: a
group subscription would rebalance on its own schedule and wait seconds for its first assignment. One
consumer per partition keeps each reader independent (its own fetch queue, position and end) at the cost
of a few librdkafka threads and about `prefetch_bytes` of fetched messages per partition (prefetch.py).
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from loglake.operators.kafka.client import KafkaLog, check_settings, client_settings, error_text, with_backoff
from loglake.operators.kafka.config import KafkaSourceConfig
from loglake.operators.kafka.decode import METADATA_TYPES, MessageDecoder, offset_of
from loglake.operators.kafka.offsets import plan_span
from loglake.operators.kafka.prefetch import consumer_tuning
from loglake.operators.lines import TRUNCATED_COLUMN
from loglake.schemas.connectors import EndOfInput
from loglake.schemas.errors import TerminalError
from loglake.schemas.registry import register_source
from loglake.schemas.stage import NodeContext

__all__ = ["KafkaSource", "KafkaPartition"]

log = logging.getLogger(__name__)

_SHOWN_TOPICS = 8


@register_source(KafkaSourceConfig)
class KafkaSource:
    """The partitions of the configured topics, found from the cluster's metadata on first use (not at construction,
    so `loglake validate` and `loglake test` need no broker)."""

    def __init__(self, config: KafkaSourceConfig, ctx: NodeContext) -> None:
        self.config = config
        self._ctx = ctx
        self._lock = threading.Lock()
        self._partitions: list[str] | None = None
        self._readers: dict[str, KafkaPartition] = {}
        """The partitions open in this process, for `lag`."""
        self._committer: Consumer | None = None
        self._commit_log = KafkaLog(ctx.node)
        check_settings(self.settings(KafkaLog(ctx.node)), "consumer", ctx.node)

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """`raw`: `message`, the `kafka_*` metadata and `_truncated`; `json`: unknown (the objects' keys)."""
        if self.config.format == "json":
            return None
        return frozenset({"message", TRUNCATED_COLUMN, *(f"kafka_{name}" for name in self.config.fields)})

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The `kafka_*` metadata columns' types; with `raw`, also `message` (text) and `_truncated` (bool).

        A `json` object's keys may hold anything, so there only the metadata is known (it replaces a same-named key).
        """
        types = {f"kafka_{name}": METADATA_TYPES[name] for name in self.config.fields}
        if self.config.format == "raw":
            types.update({"message": pa.string(), TRUNCATED_COLUMN: pa.bool_()})
        return types

    def settings(self, kafka_log: KafkaLog) -> dict[str, Any]:
        """librdkafka settings for one of this source's consumers."""
        config = self.config
        owned = {
            "group.id": config.group or f"loglake-{self._ctx.node}",  # a consumer needs one; without `group` nothing is committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",  # a position the log no longer has: read what is left rather than skip to the end
            "enable.partition.eof": True,
        }
        return client_settings(config.brokers, self._ctx.node, kafka_log, consumer_tuning(config.prefetch_bytes), config.options, owned)

    def partitions(self) -> list[str]:
        """`<topic>/<partition>` for every partition of the topics, sorted by topic, then partition number."""
        with self._lock:
            if self._partitions is None:
                self._partitions = self._discover()
            return list(self._partitions)

    def open(self, partition: str, resume: Any | None) -> KafkaPartition:
        """Read one topic partition from the offset `resume` (a `position()` saved earlier) or where `plan_span` says."""
        if partition not in self.partitions():
            raise ValueError(f"{self._ctx.node}: '{partition}' is not one of this source's partitions")
        topic, _, number = partition.rpartition("/")
        kafka_log = KafkaLog(self._ctx.node)
        reader = KafkaPartition(self.config, self._ctx, self.settings(kafka_log), kafka_log, topic, int(number), resume)
        reader.on_close = lambda: self._readers.pop(partition, None)
        self._readers[partition] = reader
        return reader

    def lag(self) -> dict[str, int]:
        """Messages each partition open in this process is behind the end of its log (for `/metrics`).

        Non-blocking: the end is the high watermark of the partition's latest fetch; a partition that has not
        fetched yet is left out.
        """
        lags = {name: reader.lag() for name, reader in list(self._readers.items())}
        return {name: behind for name, behind in lags.items() if behind is not None}

    def commit_offsets(self, positions: dict[str, Any], wait: bool = False) -> None:
        """Commit positions (partition name → next offset) to `group`, for lag monitoring and as a start point.

        Asynchronous unless `wait` (the engine waits at the end of a run), and never raising: a failed commit
        is logged. Without `group` this does nothing.
        """
        if self.config.group is None:
            return
        offsets = [
            TopicPartition(name.rpartition("/")[0], int(name.rpartition("/")[2]), offset)
            for name, offset in positions.items()
            if isinstance(offset, int) and not isinstance(offset, bool) and name.rpartition("/")[2].isdigit()
        ]
        with self._lock:
            if self._committer is None:
                settings = self.settings(self._commit_log)
                settings["on_commit"] = self._committed
                self._committer = Consumer(settings)
            committer = self._committer
        committer.poll(0)  # serves the results of earlier commits
        if offsets:
            try:
                if wait:
                    committer.commit(offsets=offsets, asynchronous=False)
                else:
                    committer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:
                self._commit_log.problem(f"cannot commit offsets to group '{self.config.group}': {error_text(exc)}")

    def _committed(self, error: KafkaError | None, offsets: list[TopicPartition]) -> None:
        failed = [f"{tp.topic}/{tp.partition}: {tp.error.str()}" for tp in offsets if tp.error is not None]
        if error is not None or failed:
            detail = error.str() if error is not None else "; ".join(failed)
            self._commit_log.problem(f"cannot commit offsets to group '{self.config.group}': {detail}")

    def _discover(self) -> list[str]:
        kafka_log = KafkaLog(self._ctx.node)
        consumer = Consumer(self.settings(kafka_log))
        try:
            timeout = self.config.connect_timeout.total_seconds()
            metadata = with_backoff(
                lambda t: consumer.list_topics(timeout=t), "list the topics", self.config.brokers, timeout, self._ctx.node, kafka_log, consumer
            )
        finally:
            consumer.close()
        existing = {name: sorted(meta.partitions) for name, meta in metadata.topics.items()}
        topics = self._chosen_topics(sorted(existing))
        names = [f"{topic}/{number}" for topic in topics for number in existing[topic]]
        log.info("%s: %d partition(s) of %s", self._ctx.node, len(names), ", ".join(topics))
        return names

    def _chosen_topics(self, existing: list[str]) -> list[str]:
        visible = [name for name in existing if not name.startswith("__")]
        where = ", ".join(self.config.brokers)
        if self.config.topic_pattern is not None:
            pattern = re.compile(self.config.topic_pattern)
            matched = [name for name in visible if pattern.fullmatch(name)]
            if not matched:
                raise TerminalError(f"topic_pattern '{pattern.pattern}' matches no topic on {where}; {_listing(visible)}", self._ctx.node)
            return matched
        assert self.config.topics is not None
        for topic in self.config.topics:
            if topic not in existing:
                close = difflib.get_close_matches(topic, visible, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise TerminalError(f"topic '{topic}' does not exist on {where}; {hint}{_listing(visible)}", self._ctx.node)
        return list(dict.fromkeys(self.config.topics))


def _listing(topics: list[str]) -> str:
    if not topics:
        return "the cluster has no topics"
    shown = ", ".join(topics[:_SHOWN_TOPICS]) + (f", … {len(topics) - _SHOWN_TOPICS} more" if len(topics) > _SHOWN_TOPICS else "")
    return f"existing topics: {shown}"


class KafkaPartition:
    """One topic partition read by its own consumer; `position()` is the offset of the next message to read."""

    def __init__(
        self, config: KafkaSourceConfig, ctx: NodeContext, settings: dict[str, Any], kafka_log: KafkaLog, topic: str, number: int, resume: Any | None
    ) -> None:
        self._config = config
        self._node = ctx.node
        self._name = f"{topic}/{number}"
        self._log = kafka_log
        self._consumer: Consumer | None = Consumer(settings)
        try:
            span = plan_span(self._consumer, topic, number, config, resume, self._node, self._log)
            self._consumer.assign([TopicPartition(topic, number, span.start)])
        except BaseException:
            self._consumer.close()
            raise
        self._next = span.start
        self._end = span.end
        self._not_before = span.not_before_ms
        self._not_after = span.not_after_ms
        self._at_end = span.end is not None and span.start >= span.end
        self._pending: list[Any] = []
        self._decoder = MessageDecoder(config, ctx, topic, number)
        self._timeout = config.poll_timeout.total_seconds()
        self._tp = TopicPartition(topic, number)
        self.on_close: Callable[[], object] | None = None
        """Called once when the partition is closed (the source stops counting its lag)."""

    def read(self) -> pa.RecordBatch | None:
        """The next batch; None when no message arrived within `poll_timeout`; `EndOfInput` after the end with `stop_at: end`."""
        if self._log.fatal is not None:
            raise TerminalError(f"cannot read {self._name}: {self._log.fatal}", self._node)
        messages = self._pending or self._poll()
        if not messages:
            if self._at_end:
                raise EndOfInput
            return None
        batch, taken = self._decoder.decode(messages)
        self._pending = messages[taken:]
        self._next = offset_of(messages[taken - 1]) + 1
        if self._end is not None and self._next >= self._end:
            self._at_end = True
        return batch

    def position(self) -> int:
        """The offset of the next message to read."""
        return self._next

    def lag(self) -> int | None:
        """Messages between the position and the high watermark of the latest fetch; None before the first fetch."""
        consumer = self._consumer
        if consumer is None:
            return None
        high = consumer.get_watermark_offsets(self._tp, cached=True)
        if high is None or high[1] < 0:
            return None
        return max(int(high[1]) - self._next, 0)

    def close(self) -> None:
        """Close the consumer (it never joined a group, so nothing is rebalanced)."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()
        if self.on_close is not None:
            self.on_close()
            self.on_close = None

    def _poll(self) -> list[Any]:
        """Messages of one consume call, errors handled, trimmed to the span."""
        if self._at_end or self._consumer is None:
            return []
        events = self._consumer.consume(self._config.batch_size, self._timeout)
        messages = [event for event in events if event.error() is None]
        if len(messages) != len(events):
            self._on_errors([event for event in events if event.error() is not None])
        if not messages:
            return []
        first = offset_of(messages[0])
        if first < self._next:
            log.warning(
                "%s: %s went back from offset %d to %d: the saved position is past the end of the log (was the topic "
                "deleted and created again?); reading what it holds now",
                self._node, self._name, self._next, first,
            )
        if self._not_before is not None:
            messages = self._skip_older(messages)
        if self._not_after is not None and messages:
            messages = self._before_stop_time(messages)
        if self._end is not None and messages:
            messages = self._before_end(messages)
        if self._end is not None and self._next >= self._end:
            self._at_end = True
        return messages

    def _on_errors(self, events: list[Any]) -> None:
        for event in events:
            error = event.error()
            if error.code() == KafkaError._PARTITION_EOF:
                if self._end is not None and offset_of(event) >= self._end:
                    self._at_end = True
                continue
            if error.fatal():
                raise TerminalError(f"cannot read {self._name}: {error.str()}", self._node)
            self._log.problem(f"{self._name}: {error.str()}")  # librdkafka keeps retrying

    def _skip_older(self, messages: list[Any]) -> list[Any]:
        """Drop leading messages stamped before the start time; the position moves past them."""
        assert self._not_before is not None
        for index, message in enumerate(messages):
            kind, millis = message.timestamp()
            if not kind or millis >= self._not_before:
                self._not_before = None
                return messages[index:]
        self._next = offset_of(messages[-1]) + 1
        return []

    def _before_stop_time(self, messages: list[Any]) -> list[Any]:
        """Keep the messages before the first one stamped after the stop time; that one ends the partition, unread."""
        assert self._not_after is not None
        for index, message in enumerate(messages):
            kind, millis = message.timestamp()
            if kind and millis > self._not_after:
                self._at_end = True
                if index == 0:
                    self._next = max(self._next, offset_of(message))
                return messages[:index]
        return messages

    def _before_end(self, messages: list[Any]) -> list[Any]:
        assert self._end is not None
        if offset_of(messages[-1]) < self._end:
            return messages
        self._at_end = True
        kept = [message for message in messages if offset_of(message) < self._end]
        if not kept:
            self._next = max(self._next, self._end)
        return kept
