"""Record batches to Kafka message values, keys and topics.

JSON values follow the `stdout` sink's line format (timestamps ISO 8601 UTC with `Z`, bytes in base64, one
object per record) without the newline; both write with orjson under the same options.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import orjson
import pyarrow as pa

__all__ = ["json_values", "text_values", "column_texts"]

_JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


def _printable(data_type: pa.DataType) -> pa.DataType:
    """`data_type` with its timestamps (nested ones too) in UTC and at most µs, as Python and the `Z` suffix need."""
    if pa.types.is_timestamp(data_type):
        return pa.timestamp("us" if data_type.unit == "ns" else data_type.unit, tz="UTC" if data_type.tz else None)
    if pa.types.is_duration(data_type) and data_type.unit == "ns":
        return pa.duration("us")
    if pa.types.is_struct(data_type):
        return pa.struct([field.with_type(_printable(field.type)) for field in data_type])
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        item = data_type.value_field.with_type(_printable(data_type.value_type))
        return pa.list_(item) if pa.types.is_list(data_type) else pa.large_list(item)
    return data_type


def json_values(batch: pa.RecordBatch) -> list[bytes]:
    """Each record as one JSON object (`{"timestamp":"2015-05-17T10:05:03Z",…}`); null columns are written as null."""
    target = pa.schema([field.with_type(_printable(field.type)) for field in batch.schema])
    if not target.equals(batch.schema):
        batch = batch.cast(target, safe=False)
    dumps = orjson.dumps
    return [dumps(row, default=_json_default, option=_JSON_OPTIONS) for row in batch.to_pylist()]


def column_texts(batch: pa.RecordBatch, name: str) -> list[str | None]:
    """A column's values as text (strings as they are, other values as their string cast); KeyError if absent."""
    column = batch.column(name)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            return [None if v is None else v.decode("utf-8", errors="replace") for v in column.to_pylist()]
        column = column.cast(pa.string())
    texts: list[str | None] = column.to_pylist()
    return texts


def text_values(batch: pa.RecordBatch, name: str) -> list[bytes | None]:
    """A column's values as UTF-8 message values (binary columns as they are); KeyError if absent."""
    column = batch.column(name)
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        raw: list[bytes | None] = column.to_pylist()
        return raw
    return [None if text is None else text.encode("utf-8") for text in column_texts(batch, name)]
