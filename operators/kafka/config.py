"""The `kafka` source's and sink's configuration models, and the librdkafka keys loglake sets itself."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from loglake.schemas.config import NodeConfig, SinkConfig, SourceConfig
from loglake.schemas.units import ByteSize, Duration

__all__ = [
    "KafkaConnectionConfig",
    "KafkaSourceConfig",
    "KafkaSinkConfig",
    "MetadataField",
    "Compression",
    "SOURCE_OWNED_OPTIONS",
    "SINK_OWNED_OPTIONS",
]

MetadataField = Literal["key", "topic", "partition", "offset", "timestamp", "headers"]
Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]

_BROKERS = "use the `brokers` key"
_CONNECTION_OWNED = {"bootstrap.servers": _BROKERS, "metadata.broker.list": _BROKERS}

SOURCE_OWNED_OPTIONS: dict[str, str] = {
    **_CONNECTION_OWNED,
    "group.id": "use the `group` key",
    "enable.auto.commit": "loglake commits offsets itself, from its checkpoints",
    "enable.auto.offset.store": "loglake commits offsets itself, from its checkpoints",
    "auto.offset.reset": "use the `start` key",
    "enable.partition.eof": "loglake needs it to find the end of a partition",
}
"""librdkafka consumer settings loglake sets itself, each with what to do instead."""

SINK_OWNED_OPTIONS: dict[str, str] = {
    **_CONNECTION_OWNED,
    "enable.idempotence": "the sink is always idempotent, so retries never duplicate or reorder messages",
    "acks": "the sink always waits for all in-sync replicas (acks=all)",
    "compression.type": "use the `compression` key",
    "compression.codec": "use the `compression` key",
    "delivery.report.only.error": "loglake needs delivery reports to surface failures",
    "transactional.id": "the sink does not use transactions",
}
"""librdkafka producer settings loglake sets itself, each with what to do instead."""

_MAX_POLL_TIMEOUT = timedelta(milliseconds=100)
_TIME_WORDS = {"start": ("earliest", "latest"), "stop_at": ("end", "never")}
"""The words `start` and `stop_at` take besides a time."""


class KafkaConnectionConfig(NodeConfig):
    """What the `kafka` source and sink share: where the cluster is and extra client settings."""

    brokers: list[str] = Field(default=["localhost:9092"], min_length=1)
    """Bootstrap servers as `host:port` (a list, or one comma-separated string); any broker of the cluster will do."""
    options: dict[str, str | int | bool] = Field(default_factory=dict)
    """Extra librdkafka settings passed through as written (`security.protocol`, `sasl.*`, `ssl.*`, tuning); keys loglake sets itself are refused."""
    connect_timeout: Duration = Field(default="30s", validate_default=True, gt=timedelta(0))
    """How long to keep retrying (with backoff) when no broker answers at start, before stopping with an error."""

    owned_options: ClassVar[dict[str, str]] = {}
    """Option keys loglake sets itself (each kind overrides this), with what to do instead."""

    @field_validator("brokers", mode="before")
    @classmethod
    def _split_brokers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            bad = [item for item in value if not item or any(ch.isspace() or ch == "," for ch in item)]
            if bad:
                raise ValueError(f"'{bad[0]}' is not a broker address; write host:port, e.g. localhost:9092")
        return value

    @field_validator("options")
    @classmethod
    def _refuse_owned(cls, value: dict[str, str | int | bool]) -> dict[str, str | int | bool]:
        problems = [f"'{key}' is set by loglake; {cls.owned_options[key]}" for key in value if key in cls.owned_options]
        if problems:
            raise ValueError("; ".join(problems))
        return value


class KafkaSourceConfig(KafkaConnectionConfig, SourceConfig):
    """Read records from Kafka topic partitions; each partition resumes from its checkpointed offset.

    Example:
        access: {type: kafka, brokers: [localhost:9092], topics: [nginx-access], group: loglake-nginx}
    """

    type: Literal["kafka"]
    owned_options: ClassVar[dict[str, str]] = SOURCE_OWNED_OPTIONS
    topics: list[str] | None = Field(default=None, min_length=1)
    """Topics to read, every partition of each; give this or `topic_pattern`."""
    topic_pattern: str | None = None
    """Regular expression matched against whole topic names when the source starts (names starting `__` never match); give this or `topics`."""
    group: str | None = None
    """Consumer group id: its committed offsets are where a partition without a checkpoint starts, and `commit_offsets` commits there (partitions are assigned by loglake, never by the group)."""
    start: Literal["earliest", "latest"] | datetime = "earliest"
    """Where a partition with neither a checkpoint nor a committed group offset starts: `earliest`, `latest`, or an ISO-8601 time (first message at or after it; no zone means UTC)."""
    stop_at: Literal["end", "never"] | datetime | None = None
    """`end`: stop each partition at its end as found when it is opened (a bounded replay); an ISO-8601 time: stop each partition at its first message stamped after it (or at that end, if none is); `never` or unset: keep reading new messages (`stop_at: ${KAFKA_STOP_AT:-never}` lets one file do both)."""
    format: Literal["raw", "json"] = "raw"
    """`raw`: each message value becomes the `message` column; `json`: each value is a JSON object whose keys become columns (a value that is not is kept in `message` with `_error` set)."""
    fields: list[MetadataField] = ["topic", "partition", "offset"]
    """Kafka metadata added as columns named `kafka_<field>`: key, topic, partition, offset, timestamp (UTC), headers."""
    max_message_size: ByteSize = Field(default="8MiB", validate_default=True, gt=0)
    """Longest message value kept whole, in bytes; longer ones are cut and flagged `_truncated` (counted, never dropped)."""
    batch_size: int = Field(default=10_000, ge=1)
    """Most messages in one batch."""
    batch_bytes: ByteSize = Field(default="4MiB", validate_default=True, gt=0)
    """Most bytes of message values in one batch (a single larger message still makes a batch)."""
    poll_timeout: Duration = Field(default="50ms", validate_default=True, gt=timedelta(0))
    """Longest wait for messages in one poll (at most 100ms: the engine expects a poll to return quickly)."""
    prefetch_bytes: ByteSize = Field(default="16MiB", validate_default=True, ge=1 << 20, le=4 << 30)
    """Memory each partition's consumer may hold in fetched messages not yet read, decompressed, with librdkafka's ~350 bytes of bookkeeping per message; make it several batches' worth (with that bookkeeping), or reads wait for fetches."""

    @field_validator("topic_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @field_validator("start", "stop_at", mode="before")
    @classmethod
    def _word_or_time(cls, value: Any, info: ValidationInfo) -> Any:
        words = _TIME_WORDS[str(info.field_name)]
        if value is None or value in words:
            return value
        expected = f"{words[0]}, {words[1]} or an ISO-8601 time (e.g. 2024-05-01T00:00:00Z)"
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"'{value}' is not {expected}") from None
        if isinstance(value, datetime):
            return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        raise ValueError(f"{value!r} is not {expected}")

    @field_validator("poll_timeout")
    @classmethod
    def _short_poll(cls, value: timedelta) -> timedelta:
        if value > _MAX_POLL_TIMEOUT:
            raise ValueError(f"{value.total_seconds() * 1000:g}ms is too long; at most 100ms (the engine expects a poll to return quickly)")
        return value

    @model_validator(mode="after")
    def _one_topic_selector(self) -> KafkaSourceConfig:
        if (self.topics is None) == (self.topic_pattern is None):
            raise ValueError("give exactly one of 'topics' and 'topic_pattern'")
        if self.topics is not None and any(not topic for topic in self.topics):
            raise ValueError("topics: a topic name is empty")
        if isinstance(self.start, datetime) and isinstance(self.stop_at, datetime) and self.start > self.stop_at:
            raise ValueError(f"start ({self.start.isoformat()}) is after stop_at ({self.stop_at.isoformat()})")
        return self


class KafkaSinkConfig(KafkaConnectionConfig, SinkConfig):
    """Write each record as one Kafka message: a JSON object, or the text of one field.

    Example:
        alerts: {type: kafka, inputs: [split.errors], brokers: [localhost:9092], topic: nginx-errors}
    """

    type: Literal["kafka"]
    owned_options: ClassVar[dict[str, str]] = SINK_OWNED_OPTIONS
    topic: str | None = None
    """Topic every message goes to; give this or `topic_field`."""
    topic_field: str | None = None
    """Column naming each record's topic; give this or `topic`."""
    key_field: str | None = None
    """Column whose value (as text) is the message key, so records with the same key keep their order; unset: no key."""
    format: Literal["json", "raw"] = "json"
    """`json`: the whole record as one JSON object (timestamps ISO 8601 UTC, bytes base64); `raw`: the text of `field` alone."""
    field: str = "message"
    """With `format: raw`, the column sent as the message value."""
    compression: Compression = "lz4"
    """Compression of message batches on the wire and on the broker."""
    linger: Duration = Field(default="20ms", validate_default=True, ge=timedelta(0))
    """How long the producer waits to fill a batch before sending it (more throughput, more latency)."""
    flush_timeout: Duration = Field(default="30s", validate_default=True, gt=timedelta(0))
    """How long closing waits for outstanding messages to be delivered before stopping with an error."""

    @model_validator(mode="after")
    def _one_topic_selector(self) -> KafkaSinkConfig:
        if (self.topic is None) == (self.topic_field is None):
            raise ValueError("give exactly one of 'topic' and 'topic_field'")
        if self.topic == "":
            raise ValueError("topic: the topic name is empty")
        if self.format == "json" and "field" in self.model_fields_set:
            raise ValueError("'field' applies to format: raw only; format: json sends the whole record")
        return self
