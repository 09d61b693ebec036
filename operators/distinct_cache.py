"""Computing an expensive per-value result once per distinct value of a column, remembered across batches.

Enrichment stages (geoip, user_agent) dictionary-encode the input column and look each distinct value up
in a bounded cache shared by every batch and worker thread. The cache keeps the results as rows of Arrow
arrays, found by value with one dict probe: a value seen before costs no Python beyond that probe, only a
new one is computed (outside the lock) and turned into Arrow, and the rows are spread over the records with
`take`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "DistinctCache", "DistinctValues", "Failure", "Found", "Lookup", "distinct_values", "struct_of_rows", "text_column", "with_column",
]


class Failure(str):
    """Why a value has no result: the records holding it fail with this message (remembered like a result)."""


Found = tuple[Any, ...] | None | Failure
"""One value's result: its struct's field values in order, None for a null struct, or a Failure."""


@dataclass(frozen=True)
class Lookup:
    """The results for the records of one column."""

    rows: pa.StructArray
    """Each record's struct; null for a null value, a None result or a Failure."""
    errors: pa.Array | None
    """Each record's Failure message, null where it has none; None when no record failed."""


@dataclass(frozen=True)
class _Known:
    """The values remembered at one moment; `positions` only grows, so a value placed past `rows` is not known yet."""

    positions: dict[str, int]
    rows: pa.StructArray
    errors: pa.Array


class DistinctCache:
    """Results of up to `size` distinct values, safe to share between threads; past `size` it starts over."""

    def __init__(self, size: int, struct_type: pa.StructType) -> None:
        self._size = size
        self._type = struct_type
        self._lock = threading.Lock()
        self._known = _Known({}, pa.nulls(0, struct_type), pa.nulls(0, pa.string()))

    def lookup(self, column: pa.Array, compute: Callable[[str], Found]) -> Lookup:
        """Each record's result: the values not remembered are computed, once per distinct value, and remembered."""
        distinct = distinct_values(column)
        known = self._known
        limit = len(known.rows)
        where = [known.positions.get(value, limit) for value in distinct.values]
        new = [index for index, position in enumerate(where) if position >= limit]
        if new:
            values = [distinct.values[index] for index in new]
            rows, errors = _arrays([compute(value) for value in values], self._type)
            self._remember(values, rows, errors)
            old = [index for index, position in enumerate(where) if position < limit]
            order = np.empty(len(where), dtype=np.int64)
            order[old], order[new] = np.arange(len(old)), np.arange(len(old), len(where))
            picked = pa.array([where[index] for index in old], pa.int64())
            rows = pa.concat_arrays([known.rows.take(picked), rows]).take(order)
            errors = pa.concat_arrays([known.errors.take(picked), errors]).take(order)
        else:
            picked = pa.array(where, pa.int64())
            rows, errors = known.rows.take(picked), known.errors.take(picked)
        failed = errors.null_count < len(errors)
        return Lookup(rows.take(distinct.indices), errors.take(distinct.indices) if failed else None)

    def _remember(self, values: list[str], rows: pa.StructArray, errors: pa.Array) -> None:
        """Add the results of `values` (rows of `rows` and `errors`) that no other thread added meanwhile."""
        with self._lock:
            known = self._known
            fresh = [index for index, value in enumerate(values) if value not in known.positions]
            if len(known.positions) + len(fresh) > self._size:
                fresh = fresh[: self._size]
                known = _Known({}, rows.slice(0, 0), errors.slice(0, 0))
            if not fresh:
                return
            picked = pa.array(fresh, pa.int64())
            start = len(known.rows)
            for offset, index in enumerate(fresh):
                known.positions[values[index]] = start + offset  # past `rows` of the current generation: unseen yet
            merged_rows = pa.concat_arrays([known.rows, rows.take(picked)])
            self._known = _Known(known.positions, merged_rows, pa.concat_arrays([known.errors, errors.take(picked)]))

    def __len__(self) -> int:
        return len(self._known.rows)


def _arrays(found: list[Found], struct_type: pa.StructType) -> tuple[pa.StructArray, pa.Array]:
    """Results as struct rows (null for None and Failure) and failure messages (null elsewhere)."""
    rows = struct_of_rows([None if isinstance(item, Failure) else item for item in found], struct_type)
    return rows, pa.array([item if isinstance(item, Failure) else None for item in found], pa.string())


@dataclass(frozen=True)
class DistinctValues:
    """A column split into its distinct values and, per row, the index of its value (null for a null row)."""

    values: list[str]
    indices: pa.Array


def distinct_values(column: pa.Array) -> DistinctValues:
    """The distinct strings of a text column and each row's index into them (one dictionary encode)."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return DistinctValues(values=encoded.dictionary.to_pylist(), indices=encoded.indices)


def text_column(batch: pa.RecordBatch, name: str) -> pa.Array | None:
    """Column `name` as strings (dictionary-decoded, other types cast), or None when the batch has no such column."""
    index = batch.schema.get_field_index(name)
    if index < 0:
        return None
    column = batch.column(index)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_string(column.type):
        return column
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), pa.string())
    try:
        return column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # structs, lists, invalid UTF-8: nothing to look up
        return pa.nulls(len(column), pa.string())


def struct_of_rows(rows: list[tuple[object, ...] | None], struct_type: pa.StructType) -> pa.StructArray:
    """One struct per row tuple (values in `struct_type` field order); a None row is a null struct."""
    columns = [pa.array([None if row is None else row[i] for row in rows], field.type) for i, field in enumerate(struct_type)]
    mask = pa.array([row is None for row in rows], pa.bool_())
    return pa.StructArray.from_arrays(columns, fields=list(struct_type), mask=mask)


def with_column(batch: pa.RecordBatch, name: str, column: pa.Array) -> pa.RecordBatch:
    """`batch` with column `name` replaced in place, or appended when absent."""
    index = batch.schema.get_field_index(name)
    return batch.append_column(name, column) if index < 0 else batch.set_column(index, name, column)
