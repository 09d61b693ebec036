"""Record batches to Kafka message values, keys and topics.

JSON values follow the `stdout` sink's line format (timestamps ISO 8601 UTC with `Z`, bytes in base64, one
object per record) without the newline; both use `schemas.json_codec`.
"""

from __future__ import annotations

import pyarrow as pa

from loglake.schemas.json_codec import json_objects

__all__ = ["json_values", "text_values", "column_texts"]


def json_values(batch: pa.RecordBatch) -> list[bytes]:
    """Each record as one JSON object (`{"timestamp":"2015-05-17T10:05:03Z",…}`); null columns are written as null."""
    return json_objects(batch)


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
