"""A Kafka producer that never loses a failure, shared by the `kafka` sink and `loglake produce`.

It is idempotent with `acks=all`, so librdkafka's own retries neither duplicate nor reorder messages. A
message librdkafka finally gives up on is recorded by the delivery callback and raised (a TerminalError
naming the topic and the error) at the next `send`, `check` or `flush`; a full local queue makes `send`
wait for room, never drop; `flush` is bounded and says how many messages were not delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from loglake.operators.kafka.client import KafkaLog, client_settings, error_text, with_backoff
from loglake.schemas.errors import TerminalError

__all__ = ["TrackedProducer", "producer_settings", "BULK_TUNING"]

log = logging.getLogger(__name__)

BULK_TUNING: dict[str, Any] = {
    "linger.ms": 100,
    "batch.size": 1_000_000,
    "queue.buffering.max.kbytes": 262_144,
    "queue.buffering.max.messages": 1_000_000,
}
"""Producer settings for loading many messages fast (`loglake produce`, benchmarks): big batches, a deep queue."""

_ROOM_WAIT_S = 0.05


def producer_settings(
    brokers: list[str],
    node: str,
    kafka_log: KafkaLog,
    compression: str,
    tuned: dict[str, Any],
    options: dict[str, Any],
    on_delivery: Callable[[KafkaError | None, Any], None] | None = None,
) -> dict[str, Any]:
    """librdkafka settings of a `TrackedProducer`: idempotent, acks=all, failures reported to `on_delivery`."""
    owned: dict[str, Any] = {"enable.idempotence": True, "acks": "all", "compression.type": compression, "delivery.report.only.error": True}
    if on_delivery is not None:
        owned["on_delivery"] = on_delivery
    return client_settings(brokers, node, kafka_log, tuned, options, owned)


class TrackedProducer:
    """One producer and the failures of its deliveries."""

    def __init__(
        self,
        brokers: list[str],
        node: str,
        *,
        compression: str = "lz4",
        tuned: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        self.node = node
        self.sent = 0
        """Messages handed to librdkafka."""
        self.failed = 0
        """Messages whose delivery failed for good."""
        self._first_failure: str | None = None
        self._failed_topics: set[str] = set()
        self._topics: set[str] = set()
        self._log = KafkaLog(node)
        settings = producer_settings(brokers, node, self._log, compression, tuned or {}, options or {}, self._delivered)
        self._producer: Producer | None = Producer(settings)
        try:
            producer = self._live()
            with_backoff(lambda t: producer.list_topics(timeout=t), "reach the cluster", brokers, connect_timeout, node, self._log, producer)
        except BaseException:
            self._release()
            raise

    def send_many(
        self,
        topic: str | Sequence[str],
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue messages to one topic (or each to `topic[i]`), waiting while the local queue is full; raises a recorded delivery failure first."""
        self.check()
        producer = self._live()
        produce = producer.produce
        fixed, topics = (topic, None) if isinstance(topic, str) else (None, topic)
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        for index, value in enumerate(values):
            name = fixed if fixed is not None else topics[index]  # type: ignore[index]
            key = keys[index] if keys is not None else None
            while True:
                try:
                    produce(name, value, key, **extra)
                    break
                except BufferError:
                    producer.poll(_ROOM_WAIT_S)  # delivers (and reports) queued messages, making room
                except KafkaException as exc:
                    raise TerminalError(f"cannot send a message to topic '{name}': {error_text(exc)}", self.node) from None
        self.sent += len(values)
        self._topics.update([fixed] if fixed is not None else set(topics or ()))
        producer.poll(0)
        self.check()

    def check(self) -> None:
        """Raise a TerminalError for a delivery that failed (or a fatal producer error) since the last check."""
        if self._producer is not None:
            self._producer.poll(0)
        if self._log.fatal is not None:
            raise TerminalError(f"the producer cannot go on: {self._log.fatal}", self.node)
        if self.failed:
            topics = ", ".join(f"'{name}'" for name in sorted(self._failed_topics))
            raise TerminalError(
                f"{self.failed:,} message(s) could not be delivered to topic {topics} after retries: {self._first_failure}", self.node
            )

    def flush(self, timeout: float) -> None:
        """Wait up to `timeout` seconds until every message is delivered; a TerminalError if any failed or is still pending."""
        producer = self._live()
        pending = producer.flush(timeout)
        self.check()
        if pending:
            topics = ", ".join(f"'{name}'" for name in sorted(self._topics))
            raise TerminalError(
                f"{pending:,} message(s) to topic {topics} were not delivered within {timeout:g}s "
                f"(last problem: {self._log.last_problem or 'none reported'})",
                self.node,
            )

    def close(self, timeout: float) -> None:
        """Flush (see `flush`) and release the producer; messages still pending after a failure are discarded."""
        if self._producer is None:
            return
        try:
            self.flush(timeout)
        finally:
            self._release()

    def abort(self) -> None:
        """Discard messages not yet sent and release the producer; messages already sent may still arrive."""
        if self._producer is not None:
            self._producer.purge(in_queue=True, in_flight=False)
        self._release()

    def _live(self) -> Producer:
        if self._producer is None:
            raise TerminalError("the producer is closed", self.node)
        return self._producer

    def _release(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        producer.purge(in_queue=True, in_flight=True)
        producer.poll(0)
        producer.close()

    def _delivered(self, error: KafkaError | None, message: Any) -> None:
        """The delivery callback (only failures are reported: `delivery.report.only.error`)."""
        if error is None or error.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            return
        self.failed += 1
        self._failed_topics.add(str(message.topic()))
        if self._first_failure is None:
            self._first_failure = error.str()
            log.warning("%s: delivery to topic '%s' failed: %s", self.node, message.topic(), error.str())
