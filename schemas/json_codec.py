"""JSON ⇄ Arrow, shared by the `json` parser, the kafka source and sink, and the stdout sink.

Reading: Arrow's JSON reader over newline-joined objects, remembering which fields must stay text (Arrow
reads ISO-8601-looking strings as timestamps; loglake keeps them as written). Writing: each record as one
JSON object with timestamps in ISO 8601 UTC and bytes in base64.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json as pj

__all__ = ["JsonLinesReader", "json_objects", "text_hint"]

_MIN_BLOCK = 1 << 20
_MAX_BLOCK = (1 << 31) - 1
_JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


class JsonLinesReader:
    """Reads blocks of newline-separated JSON objects; fields once inferred as timestamps are read as text after."""

    def __init__(self) -> None:
        self.hints: pa.Schema | None = None

    def read(self, data: pa.Buffer | bytes, rows: int) -> pa.Table | None:
        """The objects in `data` as a table of exactly `rows` rows, or None if Arrow cannot read them so."""
        hints = self.hints
        table = _try_read(data, hints)
        if table is None and hints is not None:
            table, hints = _try_read(data, None), None
        if table is None or table.num_rows != rows:
            return None
        found = text_hint(pa.struct(list(table.schema)))
        if found is not None:
            merged = found if hints is None else _merge_hint(pa.struct(list(hints)), found)
            hints = self.hints = pa.schema(list(merged))
            table = _try_read(data, hints)
            if table is None or table.num_rows != rows:
                return None
        if hints is not None:  # hinted fields absent from this block come back all null: drop them
            absent = [name for name in hints.names if table.column(name).null_count == table.num_rows]
            table = table.drop_columns(absent)
        return table


def _try_read(data: pa.Buffer | bytes, hints: pa.Schema | None) -> pa.Table | None:
    size = data.size if isinstance(data, pa.Buffer) else len(data)
    options = pj.ReadOptions(use_threads=False, block_size=min(max(size + 1, _MIN_BLOCK), _MAX_BLOCK))
    parse = pj.ParseOptions(explicit_schema=hints, unexpected_field_behavior="infer", newlines_in_values=False)
    try:
        return pj.read_json(pa.BufferReader(data), read_options=options, parse_options=parse)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def text_hint(kind: pa.DataType) -> pa.DataType | None:
    """`kind` with every timestamp Arrow inferred turned back into text, keeping only the paths that lead to one."""
    if pa.types.is_timestamp(kind):
        return pa.string()
    if pa.types.is_struct(kind):
        kept = [pa.field(f.name, hint) for f in kind if (hint := text_hint(f.type)) is not None]
        return pa.struct(kept) if kept else None
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        item = text_hint(kind.value_type)
        return pa.list_(item) if item is not None else None
    return None


def _merge_hint(old: pa.DataType, new: pa.DataType) -> pa.DataType:
    if pa.types.is_struct(old) and pa.types.is_struct(new):
        merged = {f.name: f.type for f in old}
        for f in new:
            merged[f.name] = _merge_hint(merged[f.name], f.type) if f.name in merged else f.type
        return pa.struct(list(merged.items()))
    return new


def json_objects(batch: pa.RecordBatch | pa.Table, newline: bool = False) -> list[bytes]:
    """Each record as one JSON object (`{"timestamp":"2015-05-17T10:05:03Z",…}`); nanoseconds are cut to µs."""
    printable = pa.schema([field.with_type(_printable(field.type)) for field in batch.schema])
    if not printable.equals(batch.schema):
        batch = batch.cast(printable, safe=False)
    option = _JSON_OPTIONS | orjson.OPT_APPEND_NEWLINE if newline else _JSON_OPTIONS
    dumps = orjson.dumps
    return [dumps(row, default=_json_default, option=option) for row in batch.to_pylist()]


def _json_default(value: Any) -> Any:
    """JSON for what orjson does not know: bytes as base64 text, durations as seconds, the rest as text."""
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
