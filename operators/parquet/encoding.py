"""Per-column Parquet encodings (the sink's `column_encoding`), turned into pyarrow writer options for one schema.

Every column is dictionary-encoded by default (pyarrow falls back to plain values when a column chunk's
dictionary grows too large). A column given an encoding is not: `delta` writes integers and times as
differences from the previous value (DELTA_BINARY_PACKED; a counter such as `kafka_offset` or a line number
takes about half the space) and text as the suffix after the prefix it shares with the previous value
(DELTA_BYTE_ARRAY); `byte_stream_split` splits floats and integers into one stream per byte
(BYTE_STREAM_SPLIT), which suits measurements; `plain` writes values as they are. A named column that a
file does not have is left out; a type the encoding does not fit is an `EncodingError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Literal

import pyarrow as pa

__all__ = ["ColumnEncoding", "EncodingError", "writer_encodings"]

ColumnEncoding = Literal["delta", "byte_stream_split", "plain"]


class EncodingError(ValueError):
    """An encoding asked for a column whose type it does not fit (or for a struct rather than its fields)."""


def _is_text(value_type: pa.DataType) -> bool:
    return bool(pa.types.is_string(value_type) or pa.types.is_large_string(value_type)
                or pa.types.is_binary(value_type) or pa.types.is_large_binary(value_type))


def _is_whole(value_type: pa.DataType) -> bool:
    """Types Parquet stores as INT32 or INT64."""
    return bool(pa.types.is_integer(value_type) or pa.types.is_temporal(value_type))


_CHOICES: dict[str, list[tuple[Callable[[pa.DataType], bool], str]]] = {
    "delta": [(_is_whole, "DELTA_BINARY_PACKED"), (_is_text, "DELTA_BYTE_ARRAY")],
    "byte_stream_split": [
        (lambda t: bool(pa.types.is_floating(t) or pa.types.is_decimal(t)), "BYTE_STREAM_SPLIT"),
        (_is_whole, "BYTE_STREAM_SPLIT"),
    ],
    "plain": [(lambda t: True, "PLAIN")],
}
_FITS = {"delta": "integers, times and text", "byte_stream_split": "floats, decimals, integers and times", "plain": "every type"}


def writer_encodings(schema: pa.Schema, encodings: Mapping[str, str]) -> tuple[bool | list[str], dict[str, str] | None]:
    """pyarrow's `use_dictionary` and `column_encoding` for `schema`: dictionaries everywhere but the encoded columns.

    Raises EncodingError if an encoding does not fit its column's type, or names a struct instead of its fields.
    """
    if not encodings:
        return True, None
    leaves = dict(_leaves(schema))
    chosen: dict[str, str] = {}
    for path, encoding in encodings.items():
        value_type = _resolve(schema, path)
        if value_type is None:
            continue
        if pa.types.is_struct(value_type):
            raise EncodingError(f"column_encoding: '{path}' is a struct; name its fields, e.g. '{path}.{value_type.field(0).name}'")
        if path not in leaves:
            raise EncodingError(f"column_encoding: column '{path}' is {value_type}; only columns of single values take an encoding")
        if pa.types.is_dictionary(value_type):
            value_type = value_type.value_type
        found = next((name for fits, name in _CHOICES[encoding] if fits(value_type)), None)
        if found is None:
            raise EncodingError(f"column_encoding: '{encoding}' fits {_FITS[encoding]}; column '{path}' is {value_type}")
        chosen[path] = found
    return [path for path in leaves if path not in chosen], chosen or None


def _resolve(schema: pa.Schema, path: str) -> pa.DataType | None:
    """The type at a dotted path through struct fields (`geo.latitude`), or None if the schema lacks it."""
    if schema.get_field_index(path) >= 0:
        return schema.field(path).type
    head, *rest = path.split(".")
    if schema.get_field_index(head) < 0:
        return None
    value_type = schema.field(head).type
    for name in rest:
        if not pa.types.is_struct(value_type) or value_type.get_field_index(name) < 0:
            return None
        value_type = value_type.field(name).type
    return value_type


def _leaves(schema: pa.Schema) -> Iterator[tuple[str, pa.DataType]]:
    """Every leaf column's Parquet path (`geo.city`, `tags.list.element`, `attrs.key_value.key`) and type."""
    for field in schema:
        yield from _leaf_paths(field.name, field.type)


def _leaf_paths(path: str, value_type: pa.DataType) -> Iterator[tuple[str, pa.DataType]]:
    if pa.types.is_struct(value_type):
        for child in value_type:
            yield from _leaf_paths(f"{path}.{child.name}", child.type)
    elif pa.types.is_map(value_type):
        yield from _leaf_paths(f"{path}.key_value.key", value_type.key_type)
        yield from _leaf_paths(f"{path}.key_value.value", value_type.item_type)
    elif pa.types.is_list(value_type) or pa.types.is_large_list(value_type) or pa.types.is_fixed_size_list(value_type):
        yield from _leaf_paths(f"{path}.list.element", value_type.value_type)
    else:
        yield path, value_type
