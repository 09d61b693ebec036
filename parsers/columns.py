"""What the line parsers that add columns (csv, kv) share: the text to parse, quoting, the stage output.

`as_text` reads a column as text, `lines_of` reads the field (or answers for the whole batch when there is nothing to parse), `quote_line`
quotes a bad line in an error message, and `finish` attaches parsed columns (top-level, replacing
same-named ones, or one struct) and routes failed rows with `split_failures`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loglake.schemas.config import OnError
from loglake.schemas.stage import StageOutput, split_failures

__all__ = ["ParsedRows", "as_text", "quote_line", "lines_of", "finish"]

_QUOTE_LIMIT = 120


@dataclass
class ParsedRows:
    """A parser's result for one batch: the new columns over the kept rows, and the rows it did not keep.

    Rows are batch row indices in ascending order. `consumed` rows are neither output nor failed (a CSV
    header line); every other row not in `failed` is kept, in input order.
    """

    names: list[str] = field(default_factory=list)
    columns: list[pa.Array] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    consumed: list[int] = field(default_factory=list)


def quote_line(line: str) -> str:
    """`line` quoted for an error message, cut to 120 characters with an ellipsis."""
    return repr(line if len(line) <= _QUOTE_LIMIT else line[: _QUOTE_LIMIT - 1] + "…")


def as_text(column: pa.Array) -> pa.Array | None:
    """The column as a UTF-8 string array (invalid bytes become U+FFFD; all-null stays null), or None if it is not text."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.dictionary_decode(), kind.value_type
    if pa.types.is_string(kind):
        return column
    if pa.types.is_null(kind):  # every record's field is null: each passes through unparsed
        return pa.nulls(len(column), pa.string())
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return column.cast(pa.string())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        try:
            return column.cast(pa.string())
        except pa.ArrowInvalid:
            return pa.array([None if raw is None else raw.decode("utf-8", "replace") for raw in column.to_pylist()], pa.string())
    return None


def _text_column(batch: pa.RecordBatch, name: str) -> pa.Array | str:
    """Column `name` as UTF-8 text, or why no record of the batch can be parsed."""
    index = batch.schema.get_field_index(name)
    if index < 0:
        return f"no field '{name}' in the record"
    text = as_text(batch.column(index))
    return text if text is not None else f"field '{name}' holds {batch.schema.field(index).type}, not text"


def lines_of(batch: pa.RecordBatch, name: str, node: str, on_error: OnError) -> pa.Array | StageOutput:
    """Column `name` as text to parse, or the stage's whole output when there is nothing to parse.

    An empty batch passes as it is; a field that is missing or not text fails every record with the reason.
    """
    if batch.num_rows == 0:
        return StageOutput(main=batch)
    lines = _text_column(batch, name)
    if isinstance(lines, str):
        return split_failures(batch.slice(0, 0), batch, [lines] * batch.num_rows, node, on_error)
    return lines.cast(pa.string())


def _attach(batch: pa.RecordBatch, names: list[str], columns: list[pa.Array]) -> pa.RecordBatch:
    """`batch` with the columns set in place or appended; where a new value is null, an old one of the same type stays."""
    for name, column in zip(names, columns):
        index = batch.schema.get_field_index(name)
        if index < 0:
            batch = batch.append_column(name, column)
            continue
        existing = batch.column(index)
        if existing.type == column.type and column.null_count:
            column = pc.if_else(pc.is_valid(column), column, existing)
        batch = batch.set_column(index, name, column)
    return batch


def finish(
    batch: pa.RecordBatch, lines: pa.Array, parsed: ParsedRows, target: str | None, node: str, on_error: OnError
) -> StageOutput:
    """The kept rows with the parsed columns (top-level, or one struct `target`), failed rows per `on_error`.

    `lines` is the parsed text column of `batch`; a kept row whose line is null gets a null struct.
    """
    dropped = sorted(parsed.failed + parsed.consumed)
    if dropped:
        keep = np.ones(batch.num_rows, dtype=bool)
        keep[dropped] = False
        mask = pa.array(keep)
        good, null_lines = batch.filter(mask), lines.is_null().filter(mask)
    else:
        good, null_lines = batch, lines.is_null()
    if target is None:
        good = _attach(good, parsed.names, parsed.columns)
    else:
        fields = [pa.field(name, column.type) for name, column in zip(parsed.names, parsed.columns)]
        struct = pa.StructArray.from_arrays(parsed.columns, fields=fields, mask=null_lines)
        index = good.schema.get_field_index(target)
        good = good.append_column(target, struct) if index < 0 else good.set_column(index, target, struct)
    if not parsed.failed:
        return StageOutput(main=good)
    failed = batch.take(pa.array(parsed.failed, pa.int64()))
    return split_failures(good, failed, parsed.errors, node, on_error)
