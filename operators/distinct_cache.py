"""Computing an expensive per-value result once per distinct value of a column, remembered across batches.

Enrichment stages (geoip, user_agent) dictionary-encode the input column, look each distinct value up in a
bounded, thread-safe LRU shared by every batch and worker thread, compute only the misses, and spread the
per-distinct results back over the rows with a `take`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["DistinctCache", "DistinctValues", "distinct_values", "struct_of_rows", "text_column", "with_column"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class DistinctCache(Generic[K, V]):
    """A bounded least-recently-used map, safe to share between threads (one lock, held only for dict work)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, V] = OrderedDict()

    def resolve(self, keys: list[K], compute: Callable[[K], V]) -> list[V]:
        """The value for each key: cached ones reused, the others computed (outside the lock) and remembered."""
        if self._size == 0:
            return [compute(key) for key in keys]
        found: list[V | None] = [None] * len(keys)
        missing: list[int] = []
        with self._lock:
            entries = self._entries
            for position, key in enumerate(keys):
                if key in entries:
                    entries.move_to_end(key)
                    found[position] = entries[key]
                else:
                    missing.append(position)
        if not missing:
            return found  # type: ignore[return-value]
        computed = [compute(keys[position]) for position in missing]
        with self._lock:
            entries = self._entries
            for position, value in zip(missing, computed):
                found[position] = value
                entries[keys[position]] = value
            while len(entries) > self._size:
                entries.popitem(last=False)
        return found  # type: ignore[return-value]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


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
