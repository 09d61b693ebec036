"""The `kafka` sink: each record one message, to a fixed topic or one named by a column, keyed by a column.

Also what `dead_letter: {type: kafka, …}` builds: failed records carry `_error`, `_error_node` and their
original fields, and `format: json` sends them all. Delivery is at least once: each engine snapshot waits
for delivery, and a failure after librdkafka's retries stops the run with a TerminalError (at the next
write, snapshot or close), never silently.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

from loglake.operators.kafka.client import KafkaLog, check_settings
from loglake.operators.kafka.config import KafkaSinkConfig
from loglake.operators.kafka.encode import column_texts, json_values, text_values
from loglake.operators.kafka.producer import TrackedProducer, producer_settings
from loglake.schemas.errors import TerminalError
from loglake.schemas.registry import register_sink
from loglake.schemas.stage import NodeContext

__all__ = ["KafkaSink", "KafkaSinkWriter", "SINK_TUNING"]

log = logging.getLogger(__name__)

SINK_TUNING = {"batch.size": 1_000_000, "queue.buffering.max.kbytes": 131_072}
"""Producer settings under the user's `options`: batches up to 1 MB, at most 128 MiB queued per writer."""


@register_sink(KafkaSinkConfig)
class KafkaSink:
    """A producer per worker; construction checks the settings without connecting (so `loglake validate` needs no broker)."""

    def __init__(self, config: KafkaSinkConfig, ctx: NodeContext) -> None:
        self.config = config
        self._ctx = ctx
        settings = producer_settings(config.brokers, ctx.node, KafkaLog(ctx.node), config.compression, self._tuning(), config.options)
        check_settings(settings, "producer", ctx.node)

    def open(self, worker_index: int, worker_count: int) -> KafkaSinkWriter:
        """A writer with its own producer, connected (with backoff up to `connect_timeout`) before it returns."""
        return KafkaSinkWriter(self.config, self._ctx, self._tuning())

    def open_partition(
        self, partition: str, resume: Any | None, roll_back_unsnapshotted: bool = False, keeps_snapshots: bool = False
    ) -> KafkaSinkWriter:
        """The writer of one sink partition, whose `snapshot` waits until everything written is delivered.

        Kafka cannot take messages back, so neither `resume` nor `roll_back_unsnapshotted` removes anything:
        the messages a crashed run sent after its last snapshot are sent again (at least once; never lost).
        Exactly once would need Kafka transactions.
        """
        if resume is not None:
            log.info("%s: sink partition %s resumes; messages sent after its last snapshot may arrive twice", self._ctx.node, partition)
        return self.open(0, 1)

    def _tuning(self) -> dict[str, int]:
        return {**SINK_TUNING, "linger.ms": int(self.config.linger.total_seconds() * 1000)}


class KafkaSinkWriter:
    """Turns batches into messages and hands them to a `TrackedProducer`."""

    def __init__(self, config: KafkaSinkConfig, ctx: NodeContext, tuning: dict[str, int]) -> None:
        self._config = config
        self._ctx = ctx
        self._producer = TrackedProducer(
            config.brokers,
            ctx.node,
            compression=config.compression,
            tuned=tuning,
            options=config.options,
            connect_timeout=config.connect_timeout.total_seconds(),
        )

    def write(self, batch: pa.RecordBatch) -> None:
        """Queue one message per record; an empty batch only collects delivery reports. Raises earlier delivery failures."""
        if not batch.num_rows:
            self._producer.check()
            return
        config = self._config
        values = json_values(batch) if config.format == "json" else text_values(batch, self._column(batch, config.field, "field"))
        keys = None if config.key_field is None else text_values(batch, self._column(batch, config.key_field, "key_field"))
        topic: str | list[str] = config.topic if config.topic is not None else self._topics(batch)
        self._producer.send_many(topic, values, keys)
        self._ctx.counters.add("records_out", batch.num_rows)

    def snapshot(self) -> dict[str, int]:
        """Wait up to `flush_timeout` until every message written so far is delivered (see `close`); how many were sent."""
        self._producer.flush(self._config.flush_timeout.total_seconds())
        return {"sent": self._producer.sent}

    def close(self) -> None:
        """Wait up to `flush_timeout` for every message to be delivered; a TerminalError says how many were not."""
        self._producer.close(self._config.flush_timeout.total_seconds())

    def abort(self) -> None:
        """Drop messages not yet sent (the run resumes from its checkpoint and sends them again)."""
        self._producer.abort()

    def _column(self, batch: pa.RecordBatch, name: str, key: str) -> str:
        if name not in batch.schema.names:
            raise TerminalError(f"{key} '{name}' is not a column of the records (columns: {', '.join(batch.schema.names)})", self._ctx.node)
        kind = batch.schema.field(name).type
        if pa.types.is_nested(kind):
            raise TerminalError(f"{key} '{name}' holds {kind} values; it must hold text or a scalar", self._ctx.node)
        return name

    def _topics(self, batch: pa.RecordBatch) -> list[str]:
        assert self._config.topic_field is not None
        texts = column_texts(batch, self._column(batch, self._config.topic_field, "topic_field"))
        if None in texts or "" in texts:
            row = next(index for index, text in enumerate(texts) if not text)
            raise TerminalError(f"record {row + 1} of a batch has no topic in topic_field '{self._config.topic_field}'", self._ctx.node)
        return [str(text) for text in texts]
