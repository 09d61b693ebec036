"""Kafka messages to a record batch: values as `message` text or as JSON columns, plus the `kafka_*` metadata columns.

Values are gathered once into an Arrow binary array; truncation, UTF-8 validation and (for JSON) parsing run
over the whole batch, Python touches single messages only on the slow paths: an over-long value, invalid
UTF-8, and a batch whose JSON Arrow's reader cannot take in one go (then each value is checked with orjson,
so only the bad ones fail). A value that is not a JSON object is kept as a row with `message` = its text
and `_error`/`_error_node` set, in offset order with the others.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from loglake.operators.kafka.client import Throttle
from loglake.operators.kafka.config import KafkaSourceConfig
from loglake.operators.lines import TRUNCATED_COLUMN
from loglake.schemas.json_codec import JsonLinesReader
from loglake.schemas.records import TIMESTAMP_TYPE, concat_batches
from loglake.schemas.stage import NodeContext, with_error_columns

__all__ = ["HEADERS_TYPE", "METADATA_TYPES", "MessageDecoder", "offset_of"]

log = logging.getLogger(__name__)

HEADERS_TYPE = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))
"""`kafka_headers`: every header in order (a key may repeat); no headers is an empty list."""
METADATA_TYPES: dict[str, pa.DataType] = {
    "topic": pa.string(), "partition": pa.int32(), "offset": pa.int64(), "key": pa.string(), "timestamp": TIMESTAMP_TYPE,
    "headers": HEADERS_TYPE,
}
"""The type of each metadata field's `kafka_<field>` column (the key as text, like the value)."""

_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


class MessageDecoder:
    """Builds the batches of one topic partition's messages, counting and reporting the messages it had to mend."""

    def __init__(self, config: KafkaSourceConfig, ctx: NodeContext, topic: str, partition: int) -> None:
        self._config = config
        self._ctx = ctx
        self._topic = topic
        self._partition = partition
        self._reader = JsonLinesReader()
        """JSON keys seen holding ISO times, read as text from then on (Arrow would infer timestamps)."""
        self._throttles: dict[str, Throttle] = {}

    def decode(self, messages: list[Any]) -> tuple[pa.RecordBatch, int]:
        """The batch of the first messages that fit in `batch_bytes` (at least one), and how many that is.

        `messages` are confluent-kafka `Message`s without errors, in offset order.
        """
        values: list[bytes | None] = [message.value() for message in messages]
        raw = pa.array(values, pa.binary())
        count = _fitting(raw, self._config.batch_bytes)
        if count < len(messages):
            raw, messages, values = raw.slice(0, count), messages[:count], values[:count]
        raw, truncated = self._truncate(raw)
        if truncated:
            values = raw.to_pylist()
        if self._config.format == "json":
            batch = self._json(raw, values, messages)
        else:
            text, _ = self._text(raw, messages)
            batch = pa.RecordBatch.from_arrays([text], names=["message"])
        batch = self._add_metadata(batch, messages)
        if truncated:
            flags = [False] * count
            for row in truncated:
                flags[row] = True
            batch = batch.append_column(TRUNCATED_COLUMN, pa.array(flags, pa.bool_()))
            limit = self._config.max_message_size
            self._report("truncated_messages", truncated, messages, f"were longer than max_message_size ({limit:,} bytes) and were truncated")
        self._ctx.counters.add("records_in", count)
        return batch, count

    def _truncate(self, raw: pa.Array) -> tuple[pa.Array, list[int]]:
        limit = self._config.max_message_size
        over = pc.greater(pc.binary_length(raw), pa.scalar(limit, pa.int32()))
        if not over.true_count:
            return raw, []
        rows = pc.indices_nonzero(pc.fill_null(over, False)).to_pylist()
        values = raw.to_pylist()
        for row in rows:
            values[row] = _cut(values[row], limit)
        return pa.array(values, pa.binary()), rows

    def _text(self, raw: pa.Array, messages: list[Any], part: str = "value") -> tuple[pa.Array, list[int]]:
        """Values (or keys) as UTF-8 text, all at once on the fast path; bytes that are not UTF-8 become U+FFFD, counted."""
        try:
            return raw.cast(pa.string()), []
        except pa.ArrowInvalid:
            pass
        texts: list[str | None] = []
        invalid: list[int] = []
        for row, value in enumerate(raw.to_pylist()):
            try:
                texts.append(None if value is None else value.decode("utf-8"))
            except UnicodeDecodeError:
                texts.append(value.decode("utf-8", errors="replace"))
                invalid.append(row)
        self._report(f"invalid_utf8_{part}s", invalid, messages, f"had a {part} that is not valid UTF-8 (bad bytes replaced with U+FFFD)")
        return pa.array(texts, pa.string()), invalid

    def _json(self, raw: pa.Array, values: list[bytes | None], messages: list[Any]) -> pa.RecordBatch:
        """Each value's JSON object as columns; values that are not one become rows with `message` and `_error`."""
        table = self._read_all(values) if raw.null_count == 0 else None
        if table is not None:
            return _as_batch(table)
        good: list[int] = []
        objects: list[dict[str, Any]] = []
        failed: list[int] = []
        errors: list[str] = []
        for row, value in enumerate(values):
            problem = "the message has no value" if value is None else None
            if value is not None:
                try:
                    parsed = orjson.loads(value)
                except orjson.JSONDecodeError as exc:
                    problem = f"invalid JSON: {exc}"
                else:
                    if isinstance(parsed, dict):
                        good.append(row)
                        objects.append(parsed)
                        continue
                    problem = f"JSON {_JSON_KINDS.get(type(parsed), 'value')} is not an object"
            failed.append(row)
            errors.append(str(problem))
        good_values = [values[row] for row in good]
        table = self._read_all(good_values) if good else None
        parsed_batch = _as_batch(table) if table is not None else _object_columns(objects)
        text, _ = self._text(raw.take(pa.array(failed, pa.int64())), [messages[row] for row in failed])
        bad = with_error_columns(pa.RecordBatch.from_arrays([text], names=["message"]), pa.array(errors, pa.string()), self._ctx.node)
        self._report("invalid_json_messages", failed, messages, "were not JSON objects and were kept with `_error` set")
        if not good:
            return bad
        merged = concat_batches([with_error_columns(parsed_batch, pa.nulls(len(good), pa.string()), self._ctx.node), bad])
        return merged.take(pc.sort_indices(pa.array(good + failed, pa.int64())))

    def _read_all(self, values: list[bytes | None]) -> pa.Table | None:
        """Arrow's JSON reader over all values at once, or None when it cannot read exactly one object per value."""
        data = b"\n".join(value or b"" for value in values)
        if data.count(b"\n") != len(values) - 1:
            return None  # a value spans lines: rows would not line up with messages
        return self._reader.read(data, len(values))

    def _add_metadata(self, batch: pa.RecordBatch, messages: list[Any]) -> pa.RecordBatch:
        count = len(messages)
        for name in self._config.fields:
            if name == "topic":
                column = pa.repeat(pa.scalar(self._topic, METADATA_TYPES["topic"]), count)
            elif name == "partition":
                column = pa.repeat(pa.scalar(self._partition, METADATA_TYPES["partition"]), count)
            elif name == "offset":
                column = pa.array([message.offset() for message in messages], METADATA_TYPES["offset"])
            elif name == "key":
                keys = pa.array([message.key() for message in messages], pa.binary())
                column = self._text(keys, messages, "key")[0]
            elif name == "timestamp":
                stamps = [message.timestamp() for message in messages]
                millis = pa.array([ms if kind else None for kind, ms in stamps], pa.int64())
                column = millis.cast(pa.timestamp("ms", tz="UTC")).cast(TIMESTAMP_TYPE)
            else:
                headers = [message.headers() or [] for message in messages]
                column = pa.array([[{"key": k, "value": v} for k, v in pairs] for pairs in headers], HEADERS_TYPE)
            column_name = f"kafka_{name}"
            index = batch.schema.get_field_index(column_name)
            batch = batch.append_column(column_name, column) if index < 0 else batch.set_column(index, column_name, column)
        return batch

    def _report(self, counter: str, rows: list[int], messages: list[Any], what: str) -> None:
        if not rows:
            return
        self._ctx.counters.add(counter, len(rows))
        held = self._throttles.setdefault(counter, Throttle()).allow()
        if held is None:
            return
        log.warning(
            "%s: %d message(s) of %s/%d %s (first at offset %d)%s",
            self._ctx.node, len(rows), self._topic, self._partition, what, offset_of(messages[rows[0]]),
            f"; {held} more such report(s) held back" if held else "",
        )


def offset_of(message: Any) -> int:
    """A message's offset (-1 for an event that has none)."""
    offset = message.offset()
    return -1 if offset is None else int(offset)


def _fitting(raw: pa.Array, budget: int) -> int:
    """How many of the first values fit in `budget` bytes (at least one)."""
    starts = np.frombuffer(raw.buffers()[1], dtype=np.int32, count=len(raw) + 1, offset=raw.offset * 4)
    if int(starts[-1] - starts[0]) <= budget:
        return len(raw)
    return max(1, int(np.searchsorted(starts, starts[0] + budget, side="right")) - 1)


def _cut(value: bytes, limit: int) -> bytes:
    """At most `limit` bytes of `value`, never half a UTF-8 character."""
    cut = limit
    while 0 < cut < len(value) and value[cut] & 0xC0 == 0x80:
        cut -= 1
    return value[:cut]


def _as_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


def _object_columns(objects: list[dict[str, Any]]) -> pa.RecordBatch:
    """Parsed objects as columns; a key whose values Arrow cannot hold in one type becomes JSON text."""
    keys = list(dict.fromkeys(key for obj in objects for key in obj))
    columns: list[pa.Array] = []
    for key in keys:
        values = [obj.get(key) for obj in objects]
        try:
            columns.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns.append(pa.array([v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values], pa.string()))
    if not keys:
        return pa.RecordBatch.from_pydict({"_": pa.nulls(len(objects))}).drop_columns(["_"])
    return pa.RecordBatch.from_arrays(columns, names=keys)
