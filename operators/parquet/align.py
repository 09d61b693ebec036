"""Fitting a batch to the schema of the file it goes into, or choosing the schema of the next file.

A batch fits an open file when every column it has is in the file with the same type or one it widens
to without loss (int32 → int64, int64 → double when the values fit, null → anything, string → large
string, a struct with fewer fields); the file's other columns become nulls. A batch that does not fit
(a new column, a narrower or different type) starts a new file, whose schema unifies the old one with
the batch's where Arrow can, so records of the old shape keep fitting it.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["align_batch", "next_schema"]

_TIME_UNITS = ("s", "ms", "us", "ns")
_SAME_DATA = (
    (pa.types.is_string, pa.types.is_large_string),
    (pa.types.is_binary, pa.types.is_large_binary),
    (pa.types.is_list, pa.types.is_large_list),
)


def align_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch | None:
    """`batch` with exactly `schema`'s columns and types, or None when it cannot be made to fit losslessly."""
    names = set(batch.schema.names)
    if not names <= set(schema.names):
        return None
    columns: list[pa.Array] = []
    for field in schema:
        if field.name not in names:
            columns.append(pa.nulls(batch.num_rows, field.type))
            continue
        column = _widened(batch.column(field.name), field.type)
        if column is None:
            return None
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def next_schema(previous: pa.Schema | None, batch: pa.RecordBatch) -> tuple[pa.Schema, pa.RecordBatch]:
    """The schema for a new file that must take `batch` (and, where possible, `previous`'s records too).

    Returns the schema (every column nullable, so later batches may lack any of them) and `batch` fitted to it.
    """
    own = _nullable(batch.schema)
    if previous is not None:
        try:
            unified = pa.unify_schemas([previous, own], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            unified = None
        fitted = align_batch(batch, unified) if unified is not None else None
        if unified is not None and fitted is not None:
            return unified, fitted
    fitted = align_batch(batch, own)
    assert fitted is not None, "a batch always fits its own schema"
    return own, fitted


def _nullable(schema: pa.Schema) -> pa.Schema:
    return pa.schema([field.with_nullable(True) for field in schema], metadata=schema.metadata)


def _widened(column: pa.Array, target: pa.DataType) -> pa.Array | None:
    """`column` cast to `target` if that widens it without loss, else None."""
    if column.type.equals(target):
        return column
    if not _widens(column.type, target):
        return None
    try:
        return pc.cast(column, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _widens(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether every value of `source` has an equal value in `target` (the cast may still check the data)."""
    if source.equals(target) or pa.types.is_null(source):
        return True
    if pa.types.is_dictionary(source):
        return _widens(source.value_type, target)
    if pa.types.is_integer(source) and pa.types.is_integer(target):
        sign_fits = pa.types.is_signed_integer(target) or pa.types.is_unsigned_integer(source)
        return bool(sign_fits and target.bit_width > source.bit_width)
    if pa.types.is_floating(target) and (pa.types.is_integer(source) or pa.types.is_floating(source)):
        return bool(target.bit_width == 64 or (pa.types.is_floating(source) and target.bit_width > source.bit_width))
    if pa.types.is_timestamp(source) and pa.types.is_timestamp(target):
        return source.tz == target.tz and _TIME_UNITS.index(target.unit) >= _TIME_UNITS.index(source.unit)
    if pa.types.is_struct(source) and pa.types.is_struct(target):
        return all(
            target.get_field_index(field.name) >= 0 and _widens(field.type, target.field(field.name).type)
            for field in source
        )
    for is_small, is_large in _SAME_DATA:
        if (is_small(source) or is_large(source)) and (is_small(target) or is_large(target)):
            return not hasattr(source, "value_type") or _widens(source.value_type, target.value_type)
    return False
