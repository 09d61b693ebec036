"""A `logging.Handler` that ships structured JSON log records to a Kafka topic, for loglake to read.

Vendor this one file into a service (it needs only `confluent-kafka`) and attach the handler instead of
sending an HTTP request per log line:

    handler = LoglakeHandler("kafka:9092", "app-logs", service="checkout")
    logging.getLogger().addHandler(handler)
    log.info("paid %s", order_id, extra={"order_id": order_id, "amount": 12.5})

Each record becomes one JSON object:

    {"timestamp": "2026-05-17T10:05:03.123456+00:00", "level": "INFO", "logger": "shop.pay",
     "message": "paid 42", "service": "checkout", "host": "web-2", "order_id": 42, "amount": 12.5}

plus `exception` (the formatted traceback) and `stack` when the record carries them. Fields passed with
`extra=` are written at the top level; one that would overwrite a field above is written as `extra_<name>`.

How it behaves:

- `emit` never waits. It encodes the record and hands it to `Producer.produce`, which only appends to
  librdkafka's bounded in-memory queue (`buffer_records` records, `buffer_kbytes` KiB) and returns;
  librdkafka's own threads batch (`linger_ms`), compress (lz4) and send, retrying without duplicates
  (idempotent producer).
- When that queue is full, because the brokers are down or slower than the service logs, the new record
  is dropped and counted in `dropped`: a service must not stall or grow without bound because its log
  shipping is in trouble, and the records already queued (the start of the incident) are kept in order.
- Delivery failures are reported on a background thread and counted in `delivery_errors` (last one in
  `last_error`); nothing is raised in the threads that log.
- `close()` (also run at interpreter exit) sends what is queued, waiting up to `flush_timeout` seconds;
  records still unsent then are counted in `undelivered`. If anything was lost, `close()` writes one line
  to stderr saying how much and why. Not through `logging`, which could route it back into this handler,
  and not through `warnings`, which are often filtered and easy to miss at exit.

Create the handler after a pre-forking server forks its workers (e.g. gunicorn's `post_fork`): a
producer's threads do not survive `fork()`. Do not point confluent-kafka's own `logger` option at a
logger this handler is attached to.
"""

from __future__ import annotations

import atexit
import json
import logging
import socket
import sys
import threading
from collections.abc import Mapping
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

__all__ = ["LoglakeHandler"]

_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
"""Attributes every LogRecord has; anything else on a record came from `extra=`."""
_CORE_FIELDS = ("timestamp", "level", "logger", "message", "service", "host", "exception", "stack")
_PURGED = (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)
_DEFAULT_FORMATTER = logging.Formatter()
_POLL_INTERVAL_S = 0.1


def _jsonable(value: object) -> object:
    """JSON for values `json` cannot encode itself: ISO 8601 for dates and times, `str()` for the rest."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


class LoglakeHandler(logging.Handler):
    """Ship log records as JSON to a Kafka topic without ever blocking the thread that logs.

    Args:
        brokers: Kafka bootstrap servers, `host:port[,host:port…]`.
        topic: Topic the records are written to.
        service: The `service` field; defaults to the running script's name.
        host: The `host` field; defaults to the host name (the pod name on Kubernetes).
        level: Minimum level this handler ships.
        buffer_records: Most records waiting in memory to be sent; more are dropped and counted.
        buffer_kbytes: Most KiB waiting in memory to be sent; more are dropped and counted.
        linger_ms: How long librdkafka waits to fill a batch before sending it.
        flush_timeout: Seconds `flush()` and `close()` wait for queued records to be sent.
        producer_config: Further librdkafka settings (security, `client.id`, …); they override the above.
    """

    def __init__(
        self,
        brokers: str,
        topic: str,
        *,
        service: str | None = None,
        host: str | None = None,
        level: int | str = logging.NOTSET,
        buffer_records: int = 100_000,
        buffer_kbytes: int = 64 * 1024,
        linger_ms: int = 100,
        flush_timeout: float = 10.0,
        producer_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(level)
        self.topic = topic
        self.service = service or Path(sys.argv[0]).stem or "python"
        self.host = host or socket.gethostname()
        self.flush_timeout = flush_timeout
        self.dropped = 0
        """Records never queued: the buffer was full, the handler closed, or the producer refused them."""
        self.delivered = 0
        """Records the brokers acknowledged."""
        self.delivery_errors = 0
        """Records the producer gave up on (after its own retries)."""
        self.undelivered = 0
        """Records still queued when `close()` stopped waiting for them."""
        self.last_error: str | None = None
        self._counts = threading.Lock()
        producer = Producer(
            {
                "bootstrap.servers": brokers,
                "client.id": f"{self.service}@{self.host}",
                "linger.ms": linger_ms,
                "compression.type": "lz4",
                "enable.idempotence": True,
                "queue.buffering.max.messages": buffer_records,
                "queue.buffering.max.kbytes": buffer_kbytes,
                **(producer_config or {}),
            }
        )
        self._producer: Producer | None = producer
        """None once closed (so the producer and its connections go away)."""
        self._stop = threading.Event()
        self._reporter = threading.Thread(target=self._serve_delivery_reports, args=(producer,), name="loglake-handler", daemon=True)
        self._reporter.start()
        atexit.register(self.close)

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record for sending, or count it as dropped if the buffer is full; never waits."""
        producer = self._producer
        if producer is None:
            self._count_drop("the handler is closed")
            return
        try:
            value = self.to_json(record)
        except Exception:
            self.handleError(record)  # a record that cannot be formatted: logging's usual report on stderr
            return
        try:
            producer.produce(self.topic, value, on_delivery=self._on_delivery)
        except BufferError:
            self._count_drop("buffer full")
        except KafkaException as exc:  # e.g. a record larger than message.max.bytes
            self._count_drop(str(exc.args[0]) if exc.args else repr(exc))

    def to_json(self, record: logging.LogRecord) -> bytes:
        """The record as one UTF-8 JSON object (see the module docstring for its fields)."""
        formatter = self.formatter or _DEFAULT_FORMATTER
        fields: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
            "host": self.host,
        }
        if record.exc_info:
            fields["exception"] = record.exc_text or formatter.formatException(record.exc_info)
        if record.stack_info:
            fields["stack"] = formatter.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES:
                fields[f"extra_{key}" if key in _CORE_FIELDS else key] = value
        return json.dumps(fields, default=_jsonable, ensure_ascii=False, separators=(",", ":")).encode()

    def flush(self) -> None:
        """Wait up to `flush_timeout` seconds for queued records to be sent."""
        producer = self._producer
        if producer is not None:
            producer.flush(self.flush_timeout)

    def close(self) -> None:
        """Send what is queued (up to `flush_timeout` s), stop, and report on stderr if anything was lost."""
        self.acquire()  # the lock `handle()` holds around emit: an emit in another thread finishes first
        try:
            producer, self._producer = self._producer, None
        finally:
            self.release()
        if producer is not None:
            atexit.unregister(self.close)
            self._stop.set()
            self._reporter.join()
            unsent = producer.flush(self.flush_timeout)
            if unsent:
                with self._counts:
                    self.undelivered = unsent
                producer.purge()
                producer.flush(0)  # serves the purge reports (not counted as errors: see _on_delivery)
            self._report_losses()
        super().close()

    def _serve_delivery_reports(self, producer: Producer) -> None:
        while not self._stop.is_set():
            producer.poll(_POLL_INTERVAL_S)

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        with self._counts:
            if error is None:
                self.delivered += 1
            elif error.code() not in _PURGED:
                self.delivery_errors += 1
                self.last_error = error.str()

    def _count_drop(self, reason: str) -> None:
        with self._counts:
            self.dropped += 1
            self.last_error = reason

    def _report_losses(self) -> None:
        if not (self.dropped or self.delivery_errors or self.undelivered) or sys.stderr is None:
            return
        sys.stderr.write(
            f"loglake_handler: {self.dropped:,} log record(s) dropped, {self.delivery_errors:,} failed delivery, "
            f"{self.undelivered:,} unsent at close (topic {self.topic}; last problem: {self.last_error})\n"
        )
