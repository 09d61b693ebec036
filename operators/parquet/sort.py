"""Sorting a run of records by the sink's `sort_by` columns, and the row groups a sorted run is written in.

A sink with `sort_by` writes each file as one or more sorted runs: the records the file buffered, sorted
(ascending, nulls last, first column first) and cut into row groups of even size. Every row group is sorted,
so the file's metadata says so (`sorting_columns`), and its min/max statistics on the first sort column are
narrow, which lets DuckDB skip the row groups a filter on that column cannot match. What is given up:
records no longer keep their arrival order; a file that buffered more than the sink's `sort_buffer` holds
several runs, each sorted on its own; and files (of one partition or of different ones) are not ordered
among themselves. A sort column missing from a file is left out of its order.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["SortKeyError", "check_sortable", "sort_order", "sorting_columns", "even_group_rows"]

_NESTED = (pa.types.is_struct, pa.types.is_list, pa.types.is_large_list, pa.types.is_map, pa.types.is_fixed_size_list)


class SortKeyError(ValueError):
    """A sort column whose values have no order (a struct, a list or a map)."""


def check_sortable(schema: pa.Schema, keys: tuple[str, ...]) -> None:
    """Raise SortKeyError if a sort column of `schema` is nested (a struct, list or map)."""
    for name in _present(schema, keys):
        value_type = schema.field(name).type
        if any(is_nested(value_type) for is_nested in _NESTED):
            raise SortKeyError(f"cannot sort by column '{name}' of type {value_type}: only text, numbers, booleans and times sort")


def sort_order(table: pa.Table, keys: tuple[str, ...]) -> pa.Array | None:
    """Row indices that order `table` by `keys` (ascending, nulls last; ties keep their order), skipping keys it
    lacks; None when there is nothing to order."""
    present = _present(table.schema, keys)
    if not present or table.num_rows < 2:
        return None
    columns = [_decoded(table.column(name)) for name in present]
    key_table = pa.table(columns, names=[f"k{i}" for i in range(len(columns))])
    return pc.sort_indices(key_table, options=pc.SortOptions([(f"k{i}", "ascending", "at_end") for i in range(len(columns))]))


def sorting_columns(schema: pa.Schema, keys: tuple[str, ...]) -> tuple[pq.SortingColumn, ...] | None:
    """The Parquet `sorting_columns` that describe rows sorted by `keys` (those `schema` has), or None for no order."""
    present = _present(schema, keys)
    if not present:
        return None
    return tuple(pq.SortingColumn.from_ordering(schema, [(name, "ascending") for name in present], null_placement="at_end"))


def even_group_rows(rows: int, nbytes: int, max_rows: int, max_bytes: int) -> int:
    """Rows per row group that cut a run of `rows` (`nbytes` in Arrow) into the fewest groups within both limits, evenly."""
    groups = max(1, math.ceil(rows / max_rows), math.ceil(nbytes / max_bytes))
    return max(1, math.ceil(rows / groups))


def _present(schema: pa.Schema, keys: tuple[str, ...]) -> list[str]:
    return [name for name in keys if schema.get_field_index(name) >= 0]


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dictionary columns sort by their values (Arrow does not sort dictionaries)."""
    if pa.types.is_dictionary(column.type):
        return pc.cast(column, column.type.value_type)
    return column
