"""Reading what a window needs from a batch: field paths, event times, numbers, and group keys."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dt_time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loglake.schemas.records import TIMESTAMP_TYPE

__all__ = ["read_path", "event_times", "as_numbers", "as_keys", "GroupIds", "group_ids", "key_hashes", "is_nested"]


def read_path(batch: pa.RecordBatch, path: str) -> pa.Array | None:
    """The column `path` names, or None when the batch lacks it.

    A column whose name is exactly `path` wins; otherwise a dotted path (`ua.browser`) walks struct fields.
    Dictionary-encoded columns are decoded.
    """
    index = batch.schema.get_field_index(path)
    if index >= 0:
        column: pa.Array = batch.column(index)
    else:
        head, *rest = path.split(".")
        index = batch.schema.get_field_index(head)
        if index < 0 or not rest:
            return None
        column = batch.column(index)
        for name in rest:
            if not pa.types.is_struct(column.type) or column.type.get_field_index(name) < 0:
                return None
            column = pc.struct_field(column, name)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return column


def is_nested(kind: pa.DataType) -> bool:
    """Struct, list, map or union: values a window cannot compare, sum or hash."""
    return bool(pa.types.is_nested(kind))


def event_times(column: pa.Array | None, rows: int, field: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    """µs since the epoch for each of `rows` records, which records have one, and why the others do not.

    A missing column or a null time leaves a record without time; a column that is not a timestamp leaves
    every record without one (the message says what to do). Timestamps of any unit or zone are read as UTC.
    """
    if column is None or pa.types.is_null(column.type):
        return _no_times(rows, f"no event time in '{field}'")
    if not pa.types.is_timestamp(column.type):
        return _no_times(rows, f"'{field}' is {column.type}, not a timestamp; parse it with a timestamp stage first")
    if column.type.tz is None:
        column = pc.assume_timezone(column, "UTC")
    micros = pc.cast(pc.cast(column, TIMESTAMP_TYPE, safe=False), pa.int64())  # nanoseconds are truncated
    valid = np.asarray(pc.is_valid(micros).to_numpy(zero_copy_only=False), dtype=bool)
    values = np.asarray(pc.fill_null(micros, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    return values, valid, None if valid.all() else f"no event time in '{field}'"


def _no_times(rows: int, reason: str) -> tuple[np.ndarray, np.ndarray, str]:
    return np.zeros(rows, dtype=np.int64), np.zeros(rows, dtype=bool), reason


def as_numbers(column: pa.Array) -> tuple[pa.Array, int]:
    """`column` as numbers for sum/avg/quantile, and how many values were not numbers (now null).

    Integer and float columns are kept; booleans count as 0/1; decimals become float64; text holding a
    finite number (`"12"`, `" 3.5 "`, `"1e3"`) becomes float64, parsed once per distinct value. Any other
    value (`"12a"`, a timestamp, a struct) is an error.
    """
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return column, 0
    if pa.types.is_boolean(kind):
        return pc.cast(column, pa.int64()), 0
    if pa.types.is_decimal(kind) or pa.types.is_null(kind):
        return pc.cast(column, pa.float64()), 0
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        encoded = pc.dictionary_encode(column)
        parsed = pa.array([_number(text) for text in encoded.dictionary.to_pylist()], pa.float64())
        numbers = parsed.take(encoded.indices)
        return numbers, numbers.null_count - column.null_count
    return pa.nulls(len(column), pa.float64()), len(column) - column.null_count


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def as_keys(column: pa.Array, text: bool) -> pa.Array | None:
    """Scalar values as sketches take them: text (`text`), or else text, integers or floats; None for nested values.

    For distinct counts, times become integers (µs) and other scalars (booleans, decimals) text.
    """
    kind = column.type
    if is_nested(kind):
        return None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column
    if not text and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return column
    if not text and pa.types.is_temporal(kind):
        return pc.cast(pc.cast(column, pa.int32()) if pa.types.is_date32(kind) else column, pa.int64())
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


@dataclass(frozen=True)
class GroupIds:
    """Each record's group as a dense id, the key of each id, and the Arrow type of each group field."""

    ids: np.ndarray
    keys: list[tuple[Any, ...]]
    types: list[pa.DataType | None]
    """None for a field this batch lacks."""


def group_ids(columns: Sequence[pa.Array | None], rows: int) -> GroupIds:
    """Dense group ids for `rows` records from their group columns (None: a missing column, read as null).

    Each column is dictionary-encoded (nulls are a value of their own); several columns' codes are combined
    into one integer per record and encoded again. Python sees each distinct key once.
    """
    types = [None if column is None else column.type for column in columns]
    codes: list[np.ndarray] = []
    dictionaries: list[list[Any]] = []
    for column in columns:
        if column is None or pa.types.is_null(column.type):
            codes.append(np.zeros(rows, dtype=np.int64))
            dictionaries.append([None])
            continue
        encoded = pc.dictionary_encode(column, null_encoding="encode")
        codes.append(np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64))
        dictionaries.append(encoded.dictionary.to_pylist())
    if not codes:
        return GroupIds(np.zeros(rows, dtype=np.int64), [()], types)
    if len(codes) == 1:
        return GroupIds(codes[0], [(value,) for value in dictionaries[0]], types)
    sizes = [len(dictionary) for dictionary in dictionaries]
    if float(np.prod(np.array(sizes, dtype=np.float64))) < 2.0**62:
        combined = np.zeros(rows, dtype=np.int64)
        for code, size in zip(codes, sizes):
            combined = combined * size + code
        encoded = pc.dictionary_encode(pa.array(combined))
        ids = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        keys = [_unmix(value, sizes, dictionaries) for value in encoded.dictionary.to_pylist()]
        return GroupIds(ids, keys, types)
    distinct, inverse = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    keys = [tuple(dictionary[code] for dictionary, code in zip(dictionaries, row)) for row in distinct.tolist()]
    return GroupIds(np.asarray(inverse, dtype=np.int64).reshape(-1), keys, types)


def _unmix(value: int, sizes: list[int], dictionaries: list[list[Any]]) -> tuple[Any, ...]:
    """The key a mixed-radix combination of per-column codes stands for."""
    parts = []
    for size, dictionary in zip(reversed(sizes), reversed(dictionaries)):
        value, code = divmod(value, size)
        parts.append(dictionary[code])
    return tuple(reversed(parts))


def _key_hash(value: Any) -> int:
    """A 64-bit hash of one key value, the same in every process and run; equal values (200, 200.0) agree."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None:
        text = "\0null"
    elif isinstance(value, str):
        text = value
    else:
        text = value.isoformat() if isinstance(value, (datetime, date, dt_time)) else repr(value)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def key_hashes(groups: GroupIds) -> np.ndarray:
    """A stable 64-bit hash of each record's group key (one hash per distinct key)."""
    per_key = np.zeros(len(groups.keys), dtype=np.uint64)
    for index, key in enumerate(groups.keys):
        combined = 0
        for value in key:
            combined = (combined * 0x100000001B3 ^ _key_hash(value)) & 0xFFFFFFFFFFFFFFFF
        per_key[index] = combined
    hashes: np.ndarray = per_key[groups.ids]
    return hashes
