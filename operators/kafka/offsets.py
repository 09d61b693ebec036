"""Where a topic partition starts and, for a bounded replay, ends (at the end of the log, or at a time).

The start is, in order: the checkpoint's resume position, the group's committed offset, then the `start`
rule (earliest, latest, or the first message at or after a time). The end of the log is found by reading
up to the consumer's end-of-partition event rather than trusted from ListOffsets: the Tansu test broker
answers ListOffsets with the base offset of the last record batch plus one, which is short of the real end
whenever that batch holds several messages (its Fetch responses carry the right high watermark).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from loglake.operators.kafka.client import KafkaLog, with_backoff
from loglake.operators.kafka.config import KafkaSourceConfig
from loglake.operators.kafka.decode import offset_of
from loglake.schemas.errors import TerminalError

__all__ = ["Span", "plan_span"]

log = logging.getLogger(__name__)

_PROBE_POLL_S = 0.1


@dataclass(frozen=True)
class Span:
    """The offsets a partition reader covers."""

    start: int
    """The first offset to read."""
    end: int | None = None
    """Stop before this offset (`stop_at: end`); None reads on forever."""
    not_before_ms: int | None = None
    """Skip leading messages stamped before this time (ms since the epoch): `start` at a time on a broker whose time index is coarse."""
    not_after_ms: int | None = None
    """Stop at the first message stamped after this time (ms since the epoch): `stop_at` at a time."""


class _Planner:
    """The blocking look-ups `plan_span` needs, each retried with backoff up to `connect_timeout`."""

    def __init__(self, consumer: Consumer, topic: str, partition: int, config: KafkaSourceConfig, node: str, kafka_log: KafkaLog) -> None:
        self.consumer, self.topic, self.partition = consumer, topic, partition
        self.config, self.node, self.kafka_log = config, node, kafka_log
        self.name = f"{topic}/{partition}"

    def _call(self, call: Any, what: str) -> Any:
        timeout = self.config.connect_timeout.total_seconds()
        return with_backoff(call, f"{what} of {self.name}", self.config.brokers, timeout, self.node, self.kafka_log, self.consumer)

    def _tp(self, offset: int | None = None) -> TopicPartition:
        return TopicPartition(self.topic, self.partition) if offset is None else TopicPartition(self.topic, self.partition, offset)

    def watermarks(self) -> tuple[int, int]:
        def call(timeout: float) -> tuple[int, int]:
            found = self.consumer.get_watermark_offsets(self._tp(), timeout=timeout, cached=False)
            if found is None:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "no answer"))
            return int(found[0]), int(found[1])

        low, high = self._call(call, "read the offsets")
        return low, high

    def committed(self) -> int | None:
        found = self._call(lambda timeout: self.consumer.committed([self._tp()], timeout=timeout), "read the committed offset")
        offset = int(found[0].offset)
        return offset if offset >= 0 else None

    def offset_for_time(self, when: datetime) -> int | None:
        millis = int(when.timestamp() * 1000)
        found = self._call(lambda timeout: self.consumer.offsets_for_times([self._tp(millis)], timeout=timeout), "look up the offset for a time")
        offset = int(found[0].offset)
        return offset if offset >= 0 else None

    def log_end(self, low: int, high: int) -> int:
        """The offset after the last message: the high watermark of a fetch of the last message ListOffsets
        reports, or the end-of-partition event (see the module docstring)."""
        if high <= low:
            return high
        self.consumer.assign([self._tp(high - 1)])
        deadline = time.monotonic() + self.config.connect_timeout.total_seconds()
        try:
            while time.monotonic() < deadline:
                for event in self.consumer.consume(1, _PROBE_POLL_S):
                    error = event.error()
                    if error is None:
                        fetched = int(self.consumer.get_watermark_offsets(self._tp(), cached=True)[1])
                        return max(high, fetched, offset_of(event) + 1)
                    if error.code() == KafkaError._PARTITION_EOF:
                        return max(high, offset_of(event))
                    self.kafka_log.problem(f"{self.name}: {error.str()}")
        finally:
            self.consumer.unassign()
        raise TerminalError(
            f"cannot find the end of {self.name} within {self.config.connect_timeout.total_seconds():g}s "
            f"(last problem: {self.kafka_log.last_problem or 'none reported'})",
            self.node,
        )


def _resume_offset(resume: Any, name: str, node: str) -> int:
    if isinstance(resume, bool) or not isinstance(resume, int) or resume < 0:
        raise TerminalError(f"cannot resume {name} from {resume!r}: not a Kafka offset", node)
    return resume


def plan_span(
    consumer: Consumer, topic: str, partition: int, config: KafkaSourceConfig, resume: Any | None, node: str, kafka_log: KafkaLog
) -> Span:
    """The span to read for one partition; leaves `consumer` unassigned."""
    planner = _Planner(consumer, topic, partition, config, node, kafka_log)
    low, high = planner.watermarks()
    end_of_log: int | None = None

    def log_end() -> int:
        nonlocal end_of_log
        if end_of_log is None:
            end_of_log = planner.log_end(low, high)
        return end_of_log

    not_before: int | None = None
    if resume is not None:
        start, origin = _resume_offset(resume, planner.name, node), "the checkpoint"
    elif config.group is not None and (committed := planner.committed()) is not None:
        start, origin = committed, f"group '{config.group}'"
    elif config.start == "earliest":
        start, origin = low, "the earliest offset"
    elif config.start == "latest":
        start, origin = log_end(), "the latest offset"
    else:
        assert isinstance(config.start, datetime)
        found = planner.offset_for_time(config.start)
        start = found if found is not None else log_end()
        not_before = int(config.start.timestamp() * 1000)
        origin = f"the first message at or after {config.start.isoformat()}"
    if start < low:
        log.warning(
            "%s: offsets %d to %d of %s (from %s) are gone, deleted by retention; reading from offset %d",
            node, start, low - 1, planner.name, origin, low,
        )
        start = low
    stop_time = config.stop_at if isinstance(config.stop_at, datetime) else None
    end = log_end() if config.stop_at == "end" or stop_time is not None else None
    until = "" if end is None else f" to offset {end}"
    if stop_time is not None:
        until += f" or its first message after {stop_time.isoformat()}"
    log.info("%s: reading %s from offset %d (%s)%s", node, planner.name, start, origin, until)
    not_after = None if stop_time is None else int(stop_time.timestamp() * 1000)
    return Span(start, end, not_before, not_after)

