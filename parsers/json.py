"""The `json` stage: parse the JSON object in each record into top-level columns or one struct column.

The fast path hands the whole batch to Arrow's JSON reader at once. When that fails (a bad line, a key whose
type changes between lines) each line is checked with orjson so only the bad ones fail, and the good ones
are parsed again: vectorised if possible, else from the parsed objects, where a key with mixed types
becomes a text column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
import logging
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pydantic import Field

from loglake.parsers.columns import lines_of, quote_line
from loglake.schemas.config import StageConfig
from loglake.schemas.json_codec import JsonLinesReader
from loglake.schemas.parsing import ParseFailure, ParseResult
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, split_failures

__all__ = ["JsonConfig", "JsonStage", "parse_object"]

log = logging.getLogger(__name__)

_BIG_INT = r"[:,\[]\s*-?(?:[0-9]{20}|9[2-9][0-9]{17})"
"""A JSON number that may be an integer beyond int64 (which orjson and Arrow turn into a lossy float)."""
_LONG_DIGITS = re.compile(_BIG_INT)
_INT64_LIMIT = 2.0**63
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


class JsonConfig(StageConfig):
    """Parse the JSON object held in a text column.

    Example:
        parse: {type: json, field: message}
    """

    type: Literal["json"]
    field: str = "message"
    """Column holding the JSON text; a record where it is null passes through unparsed."""
    flatten: bool = False
    """Turn nested objects into top-level keys joined with `flatten_separator` (`http.status` → `http_status`); arrays stay as they are."""
    flatten_separator: str = Field(default="_", min_length=1)
    """What joins the parent and child key names when `flatten` is on."""
    target: str | None = None
    """Struct column to write the object to (replaced if present); unset: the keys become top-level columns, replacing same-named ones (a record without the key keeps the old value if the types match)."""


@dataclass
class _Parsed:
    """The objects of the good lines, as columns, in input order; and the bad lines with their errors."""

    fields: list[pa.Field]
    columns: list[pa.Array]
    failed: list[int]
    errors: list[str]


def _joined(lines: pa.Array) -> pa.Array:
    """All lines joined by newlines into a one-element array, in one vectorised call; null lines become `{}`."""
    filled = pc.fill_null(lines, pa.scalar("{}", lines.type)) if lines.null_count else lines
    as_list = pa.ListArray.from_arrays(pa.array([0, len(filled)], pa.int32()), filled)
    return pc.binary_join(as_list, pa.scalar("\n", lines.type))


def _big_ints(table: pa.Table, joined: pa.Array) -> bool:
    """Whether Arrow read an integer beyond int64 as a lossy float: a float that large and such a number in the text."""
    suspects = [column.combine_chunks() for column in table.columns]
    while suspects:
        array = suspects.pop()
        kind = array.type
        if pa.types.is_floating(kind):
            largest = pc.max(pc.abs(array)).as_py()
            if largest is not None and largest >= _INT64_LIMIT:
                return bool(pc.any(pc.match_substring_regex(joined, _BIG_INT)).as_py())
        elif pa.types.is_struct(kind):
            suspects.extend(array.flatten())
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
            suspects.append(array.flatten())
    return False


def _loads_leniently(line: str, exc: orjson.JSONDecodeError) -> Any:
    """A line orjson rejected, read again the way Arrow's reader reads it (NaN, Infinity), or the error raised."""
    if "surrogate" in exc.msg or not line.strip():
        raise exc
    try:
        return json.loads(line)
    except ValueError:
        raise exc from None


def _problem(line: str, exc: ValueError) -> str:
    if not line.strip():
        return "empty line"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at char {exc.pos + 1}: {exc.msg}: {quote_line(line)}"
    return f"invalid JSON: {exc}: {quote_line(line)}"


def _flattened(fields: list[pa.Field], columns: list[pa.Array], separator: str) -> tuple[list[pa.Field], list[pa.Array]]:
    """Struct columns replaced by their children, recursively, named `parent<separator>child`."""
    out_fields: list[pa.Field] = []
    out_columns: list[pa.Array] = []
    for field, column in zip(fields, columns):
        if not pa.types.is_struct(field.type):
            out_fields.append(field)
            out_columns.append(column)
            continue
        children = column.flatten()  # a null struct gives null children
        child_fields = [field.type.field(i).with_name(f"{field.name}{separator}{field.type.field(i).name}") for i in range(field.type.num_fields)]
        nested_fields, nested_columns = _flattened(child_fields, list(children), separator)
        out_fields.extend(nested_fields)
        out_columns.extend(nested_columns)
    return out_fields, out_columns


def _flattened_dict(value: dict[str, Any], separator: str, prefix: str = "") -> dict[str, Any]:
    """The same flattening for one parsed object (an empty object leaves no key)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            out.update(_flattened_dict(item, separator, f"{name}{separator}"))
        else:
            out[name] = item
    return out


def _reject_non_standard(lines: pa.Array, parsed: _Parsed) -> _Parsed:
    """Fail the lines Arrow's reader accepted but RFC 8259 does not (NaN, Infinity), as `parse_object` does.

    Only lines whose text holds `NaN` or `Infinity` are re-read, strictly; most batches have none.
    """
    suspect = pc.or_(pc.match_substring(lines, "NaN"), pc.match_substring(lines, "Infinity"))
    if not pc.any(pc.fill_null(suspect, False)).as_py():
        return parsed
    already = set(parsed.failed)
    texts = lines.to_pylist()
    rejected: dict[int, str] = {}
    for row in np.flatnonzero(pc.fill_null(suspect, False).to_numpy(zero_copy_only=False)).tolist():
        if row not in already:
            result = parse_object(texts[row])
            if isinstance(result, ParseFailure):
                rejected[row] = result.reason
    if not rejected:
        return parsed
    good_rows = [row for row in range(len(lines)) if row not in already]
    keep = pa.array([row not in rejected for row in good_rows], pa.bool_())
    failures = sorted([*zip(parsed.failed, parsed.errors), *rejected.items()])
    return _Parsed(
        parsed.fields,
        [column.filter(keep) for column in parsed.columns],
        [row for row, _ in failures],
        [error for _, error in failures],
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def parse_object(line: str) -> ParseResult:
    """One line, strictly (RFC 8259: no NaN/Infinity, no raw control characters; integers of any size exact)."""
    try:
        value = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return ParseFailure(_problem(line, exc))
    except ValueError as exc:
        return ParseFailure(f"invalid JSON: {exc}: {quote_line(line)}")
    if not isinstance(value, dict):
        return ParseFailure(f"JSON {_JSON_KINDS.get(type(value), 'value')} is not an object: {quote_line(line)}")
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return ParseFailure(f"invalid JSON: a \\u escape names a lone surrogate: {quote_line(line)}")
    return value


def _scalar_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _column(values: list[Any]) -> pa.Array:
    """An Arrow column from parsed JSON values; objects stay structs, a mix of types becomes text."""
    present = [v for v in values if v is not None]
    if not present:
        return pa.nulls(len(values))
    if all(isinstance(v, dict) for v in present):
        fields, children = _children(values)
        return pa.StructArray.from_arrays(children, fields=fields, mask=pa.array([v is None for v in values]))
    kinds = {type(v) for v in present}
    if dict not in kinds and not (bool in kinds and len(kinds) > 1):
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    return pa.array([_scalar_text(v) for v in values], pa.string())


def _children(objects: list[dict[str, Any] | None]) -> tuple[list[pa.Field], list[pa.Array]]:
    keys = list(dict.fromkeys(key for obj in objects if obj for key in obj))
    columns = [_column([obj.get(key) if obj else None for obj in objects]) for key in keys]
    return [pa.field(key, column.type) for key, column in zip(keys, columns)], columns


def _attach(batch: pa.RecordBatch, fields: list[pa.Field], columns: list[pa.Array], merge: bool) -> pa.RecordBatch:
    """`batch` with the parsed columns set in place or appended.

    With `merge`, a record whose parsed value is null (key absent) keeps the value of an existing column of
    the same type, so `message` survives in records whose object has no `message` key.
    """
    for field, column in zip(fields, columns):
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            batch = batch.append_column(field, column)
            continue
        existing = batch.column(index)
        if merge and existing.type == column.type and column.null_count:
            column = pc.if_else(pc.is_valid(column), column, existing)
        batch = batch.set_column(index, field, column)
    return batch


@register_stage(JsonConfig)
class JsonStage:
    """Parses JSON lines a batch at a time with Arrow's JSON reader, per line only when a batch needs it."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: JsonConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        self._reader = JsonLinesReader()
        """Keys seen holding ISO dates, read as text from the start so Arrow does not infer timestamps."""

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields and `target`; unknown without it (the objects' keys)."""
        if upstream is None or self.config.target is None:
            return None
        return upstream | {self.config.target}

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types but `target`'s (the objects' own, unknown); none without `target` (any key may come)."""
        target = self.config.target
        return {} if target is None else {name: kind for name, kind in upstream.items() if name != target}

    def parse_lines(self, lines: Sequence[str]) -> list[ParseResult]:
        """Each line as a dict (nested, or flattened on request), or why it is not a JSON object (see `parse_object`)."""
        results = [parse_object(line) for line in lines]
        if not self.config.flatten:
            return results
        separator = self.config.flatten_separator
        return [r if isinstance(r, ParseFailure) else _flattened_dict(r, separator) for r in results]

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with the parsed keys added; records that are not a JSON object follow `on_error`."""
        lines = lines_of(batch, self.config.field, self.ctx.node, self.config.on_error)
        if isinstance(lines, StageOutput):
            return lines
        rows = batch.num_rows
        parsed = _reject_non_standard(lines, self._parse(lines))
        nulls = lines.is_null()
        if parsed.failed:
            ok = [True] * rows
            for row in parsed.failed:
                ok[row] = False
            mask = pa.array(ok, pa.bool_())
            good, nulls = batch.filter(mask), nulls.filter(mask)
        else:
            good = batch
        fields, columns = parsed.fields, parsed.columns
        if self.config.flatten:
            fields, columns = _flattened(fields, columns, self.config.flatten_separator)
        if self.config.target is not None:
            struct = pa.StructArray.from_arrays(columns, fields=fields, mask=nulls)
            fields, columns = [pa.field(self.config.target, struct.type)], [struct]
        good = _attach(good, fields, columns, merge=self.config.target is None)
        if not parsed.failed:
            return StageOutput(main=good)
        log.debug("%s: %d of %d lines are not JSON objects", self.ctx.node, len(parsed.failed), rows)
        failed = batch.take(pa.array(parsed.failed, pa.int64()))
        return split_failures(good, failed, parsed.errors, self.ctx.node, self.config.on_error)

    def _parse(self, lines: pa.Array) -> _Parsed:
        table = self._read(lines)
        if table is not None:
            return _Parsed(list(table.schema), [c.combine_chunks() for c in table.columns], [], [])
        objects: list[dict[str, Any]] = []
        good: list[bool] = []
        failed: list[int] = []
        errors: list[str] = []
        long_digits = pc.match_substring_regex(lines, "[0-9]{19}").to_pylist()
        for row, line in enumerate(lines.to_pylist()):
            if line is None:
                objects.append({})
                good.append(True)
                continue
            try:
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    value = _loads_leniently(line, exc)
                if long_digits[row] and _LONG_DIGITS.search(line):
                    value = json.loads(line)  # exact integers beyond int64, which orjson reads as floats
            except ValueError as exc:
                failed.append(row)
                errors.append(_problem(line, exc))
                good.append(False)
                continue
            if not isinstance(value, dict):
                failed.append(row)
                errors.append(f"JSON {_JSON_KINDS.get(type(value), 'value')} is not an object: {quote_line(line)}")
                good.append(False)
                continue
            objects.append(value)
            good.append(True)
        table = self._read(lines.filter(pa.array(good, pa.bool_()))) if failed and objects else None
        if table is not None:
            return _Parsed(list(table.schema), [c.combine_chunks() for c in table.columns], failed, errors)
        fields, columns = _children(list(objects))
        return _Parsed(fields, columns, failed, errors)

    def _read(self, lines: pa.Array) -> pa.Table | None:
        """The lines read by Arrow's JSON reader, or None if it cannot read them all exactly."""
        joined = _joined(lines)
        data = joined[0].as_buffer()
        table = self._reader.read(data, len(lines))
        return None if table is None or _big_ints(table, joined) else table

