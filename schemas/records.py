"""The record model: core columns, their Arrow types, level normalisation and event-time defaulting.

Every record may carry the core columns below plus whatever fields stages add. Columns whose names start
with `_` are loglake's own metadata (`_error`, `_error_node`, `_line`, `_timestamp_defaulted`, …).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "TIMESTAMP_TYPE",
    "CORE_COLUMNS",
    "ERROR_COLUMN",
    "ERROR_NODE_COLUMN",
    "LINE_COLUMN",
    "TIMESTAMP_DEFAULTED_COLUMN",
    "TIMESTAMP_RAW_COLUMN",
    "LEVELS",
    "normalize_level",
    "conform_core_columns",
    "fill_missing_timestamps",
    "lines_batch",
    "concat_batches",
]

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
"""Event time: UTC, microseconds."""

CORE_COLUMNS: dict[str, pa.DataType] = {
    "timestamp": TIMESTAMP_TYPE,
    "message": pa.string(),
    "level": pa.string(),
    "service": pa.string(),
    "host": pa.string(),
    "source": pa.string(),
}
"""Columns every record can carry, with the type loglake guarantees for each."""

ERROR_COLUMN = "_error"
ERROR_NODE_COLUMN = "_error_node"
LINE_COLUMN = "_line"
TIMESTAMP_DEFAULTED_COLUMN = "_timestamp_defaulted"
TIMESTAMP_RAW_COLUMN = "_timestamp_raw"

LEVELS = ("trace", "debug", "info", "notice", "warn", "error", "critical", "alert", "emergency", "fatal")
"""The canonical level names; anything else is kept, lower-cased."""

_LEVEL_ALIASES = {
    "trc": "trace", "finest": "trace", "finer": "trace",
    "dbg": "debug", "fine": "debug", "d": "debug",
    "information": "info", "informational": "info", "inf": "info", "i": "info",
    "warning": "warn", "wrn": "warn", "w": "warn",
    "err": "error", "e": "error", "severe": "error",
    "crit": "critical", "ctl": "critical",
    "emerg": "emergency", "panic": "emergency",
    "ftl": "fatal",
}
_CONFORMED = b"loglake.conformed"


def normalize_level(value: str | None) -> str | None:
    """`WARNING`, `Warn`, ` warn ` → `warn`; unknown names are lower-cased and kept."""
    if value is None:
        return None
    key = value.strip().lower()
    return _LEVEL_ALIASES.get(key, key)


def _normalize_levels(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Level normalisation computed once per distinct value, then spread with a take."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    mapped = pa.array([normalize_level(v) for v in encoded.dictionary.to_pylist()], pa.string())
    return mapped.take(encoded.indices)


def _parse_timestamps(column: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array | None]:
    """Strings (ISO 8601) or timestamps of any unit/zone → UTC µs; returns the column and the raw strings that failed."""
    if pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            column = pc.assume_timezone(column, "UTC")
        return pc.cast(column, TIMESTAMP_TYPE), None
    if pa.types.is_date(column.type):
        return pc.assume_timezone(pc.cast(column, pa.timestamp("us")), "UTC"), None
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        text = pc.cast(column, pa.string())
    else:
        text = column
    if _casts(_first_value(text)):  # a cast that fails costs as much as one that succeeds: try one value first
        try:
            return pc.cast(text, TIMESTAMP_TYPE), None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    encoded = pc.dictionary_encode(text)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    parsed = [_parse_known(value) for value in encoded.dictionary.to_pylist()]
    values = pa.array(parsed, TIMESTAMP_TYPE).take(encoded.indices)
    failed = pc.and_(pc.is_null(values), pc.is_valid(text))
    raw = pc.if_else(failed, text, pa.scalar(None, pa.string())) if pc.any(failed).as_py() else None
    return values, raw


def _first_value(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The first non-null value of a column, as a column of at most one value."""
    return text.slice(0, 1) if text.null_count == 0 else text.drop_null().slice(0, 1)


def _casts(text: pa.Array | pa.ChunkedArray) -> bool:
    """Whether Arrow's ISO 8601 cast reads every value of `text`."""
    try:
        pc.cast(text, TIMESTAMP_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


_KNOWN_FORMATS = ("%d/%b/%Y:%H:%M:%S %z",)
"""Besides ISO 8601: the Apache/nginx access-log form (`17/May/2015:10:05:03 +0000`)."""


def _parse_known(value: str) -> datetime | None:
    """ISO 8601 or a known log form → UTC; a value without a zone is taken as UTC; None if unrecognised."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for pattern in _KNOWN_FORMATS:
            try:
                parsed = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
        else:
            return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def conform_core_columns(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Give present core columns their guaranteed types: event time as UTC µs, levels normalised.

    Cheap to call repeatedly: a conformed column is marked in its field metadata and skipped next time.
    Timestamp text may be ISO 8601 or the Apache/nginx access-log form; anything else becomes null and is
    kept in `_timestamp_raw`.
    """
    names = batch.schema.names
    for name in ("timestamp", "level"):
        if name not in names:
            continue
        index = names.index(name)
        field = batch.schema.field(index)
        if field.metadata and field.metadata.get(_CONFORMED):
            continue
        column = batch.column(index)
        if name == "timestamp":
            if column.type == TIMESTAMP_TYPE:
                new_column, raw = column, None
            else:
                new_column, raw = _parse_timestamps(column)
            if raw is not None:
                batch = _set_column(batch, TIMESTAMP_RAW_COLUMN, raw)
        else:
            new_column = _normalize_levels(pc.cast(column, pa.string()))
        new_field = pa.field(name, new_column.type, metadata={_CONFORMED: b"1"})
        batch = batch.set_column(batch.schema.get_field_index(name), new_field, new_column)
    return batch


def fill_missing_timestamps(batch: pa.RecordBatch, ingest_time: datetime) -> pa.RecordBatch:
    """Records without an event time get `ingest_time` and `_timestamp_defaulted = true`.

    The flag column is added only when some record needed it, so clean data stays free of it.
    """
    batch = conform_core_columns(batch)
    ingest = pa.scalar(ingest_time.astimezone(timezone.utc), TIMESTAMP_TYPE)
    if "timestamp" not in batch.schema.names:
        column = pa.array([ingest.as_py()] * batch.num_rows, TIMESTAMP_TYPE)
        defaulted = pa.array([True] * batch.num_rows, pa.bool_())
    else:
        current = batch.column("timestamp")
        missing = pc.is_null(current)
        if not pc.any(missing).as_py():
            return batch
        column = pc.if_else(missing, ingest, current)
        defaulted = missing
    batch = _set_column(batch, "timestamp", column)
    return _set_column(batch, TIMESTAMP_DEFAULTED_COLUMN, defaulted)


def _set_column(batch: pa.RecordBatch, name: str, column: pa.Array) -> pa.RecordBatch:
    index = batch.schema.get_field_index(name)
    if index < 0:
        return batch.append_column(name, column)
    return batch.set_column(index, name, column)


def lines_batch(lines: list[str], **columns: pa.Array) -> pa.RecordBatch:
    """A batch with a `message` column (and any extra columns given), as sources emit."""
    return pa.RecordBatch.from_arrays(
        [pa.array(lines, pa.string()), *columns.values()], names=["message", *columns.keys()]
    )


def concat_batches(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One batch from several, their schemas unified (missing columns null, types widened); at least one given."""
    if len(batches) == 1:
        return batches[0]
    table = pa.concat_tables([pa.Table.from_batches([batch]) for batch in batches], promote_options="permissive")
    return table.combine_chunks().to_batches()[0] if table.num_rows else batches[0]
