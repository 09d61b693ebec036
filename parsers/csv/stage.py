"""The `csv` stage: names and types the fields of each line, keeps each source's header, registers `csv`."""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loglake.parsers.columns import ParsedRows, finish, lines_of
from loglake.parsers.csv.config import CsvConfig
from loglake.parsers.csv.split import LineSplitter, field_columns
from loglake.schemas.parsing import ParseFailure, ParseResult
from loglake.schemas.records import LINE_COLUMN
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput

__all__ = ["CsvStage", "HEADER_COUNTER"]

log = logging.getLogger(__name__)

HEADER_COUNTER = "header_lines"
"""Counter of the header lines consumed (the run summary shows them as filtered: in, but not out or dropped)."""
_SOURCE = "source"
_INT = r"-?(?:0|[1-9][0-9]*)"
_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_INT_RE = re.compile(_INT)
_NUMBER_RE = re.compile(_NUMBER)
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT64 = 2**63


@dataclass(frozen=True)
class _Header:
    """Column names read from a header line, or why that line gave none."""

    names: tuple[str, ...] = ()
    error: str | None = None


_NO_FIELDS = _Header()
"""The group of null lines: kept, with no values."""


def _names_for(names: tuple[str, ...], width: int) -> tuple[str, ...]:
    """`names` extended to `width` with `columnN` names by position (made unique against the given ones)."""
    if width <= len(names):
        return names
    taken = set(names)
    extended = list(names)
    for position in range(len(names) + 1, width + 1):
        name = f"column{position}"
        while name in taken:
            name += "_"
        taken.add(name)
        extended.append(name)
    return tuple(extended)


def _typed_value(text: str) -> Any:
    """One field as `infer_types` reads it: int, float, bool, None (empty) or the text itself."""
    if not text:
        return None
    if _INT_RE.fullmatch(text):
        number = int(text)
        return number if -_INT64 <= number < _INT64 else text
    if _NUMBER_RE.fullmatch(text):
        decimal = float(text)
        return decimal if math.isfinite(decimal) else text
    return _BOOLS.get(text, text)


def _typed_column(column: pa.Array) -> pa.Array:
    """A text column (empty fields already null) as int64, float64 or bool when every value reads so, else as is."""
    present = column.drop_null()
    if len(present) == 0:
        return column
    ints = pc.match_substring_regex(present, f"^{_INT}$")
    numbers = pc.match_substring_regex(present, f"^{_NUMBER}$")
    if pc.all(numbers).as_py():
        try:
            pc.cast(present.filter(ints), pa.int64())  # an integer beyond int64 is text on its own
        except pa.ArrowInvalid:
            return column
        if pc.all(ints).as_py():
            return pc.cast(column, pa.int64())
        decimals = pc.cast(column, pa.float64())
        return column if pc.any(pc.is_inf(decimals)).as_py() else decimals
    if pc.all(pc.is_in(present, pa.array(list(_BOOLS), pa.string()))).as_py():
        return pc.equal(pc.utf8_lower(column), "true")
    return column


@register_stage(CsvConfig)
class CsvStage:
    """Splits a batch in Arrow where it can and line by line where not; remembers the header of each source."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: CsvConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        self._splitter = LineSplitter(config.delimiter, config.quote)
        self._names = tuple(config.columns or ())
        self._lock = threading.Lock()
        self._headers: dict[str | None, _Header] = {}
        """Header per `source` value (None: records without one); shared by worker threads, under `_lock`."""

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields and `target`; unknown without it (a line longer than `columns` adds `columnN` fields)."""
        if upstream is None or self.config.target is None:
            return None
        return upstream | {self.config.target}

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types but `target`'s (unknown); none without `target` (a long line adds `columnN` fields)."""
        target = self.config.target
        return {} if target is None else {name: kind for name, kind in upstream.items() if name != target}

    def parse_lines(self, lines: Sequence[str]) -> list[ParseResult]:
        """One dict per line (nested under `target` when set); a header line yields `{}`."""
        results: list[ParseResult] = []
        names = self._names
        if self.config.header:
            with self._lock:
                header = self._headers.get(None)
                if header is None and lines:
                    header = self._headers[None] = self._read_header(lines[0], None)
                    results.append(ParseFailure(header.error) if header.error else {})
            if header is not None and header.error:
                failure = ParseFailure(self._headerless(None, header))
                return results + [failure] * (len(lines) - len(results))
            names = header.names if header is not None else ()
        rest = lines[len(results):]
        if not rest:
            return results
        fields, failed, errors = self._splitter.split_array(pa.array(rest, pa.string()))
        failures = dict(zip(failed, errors))
        rows = iter(fields.to_pylist())
        widths: dict[int, tuple[str, ...]] = {}
        for index in range(len(rest)):
            reason = failures.get(index)
            if reason is not None:
                results.append(ParseFailure(reason))
                continue
            row = next(rows)
            named = widths.get(len(row)) or widths.setdefault(len(row), _names_for(names, len(row)))
            results.append(self._record(named, row))
        return results

    def _record(self, names: tuple[str, ...], fields: list[str]) -> dict[str, Any]:
        """One row as a dict: `names` (as many as `fields` at least) to values, typed and skipped as configured."""
        config = self.config
        skip, infer = config.skip_empty_values, config.infer_types
        record = {name: _typed_value(value) if infer else value for name, value in zip(names, fields) if value or not skip}
        return record if config.target is None else {config.target: record}

    def _read_header(self, line: str, source: str | None) -> _Header:
        """The column names a header line gives: trimmed, a byte-order mark dropped, empty or repeated ones `columnN`."""
        fields = self._splitter.split(line.removeprefix("\ufeff"))
        if isinstance(fields, ParseFailure):
            return _Header(error=f"bad header line: {fields.reason}")
        names: list[str] = []
        for position, field in enumerate(fields, 1):
            name = field.strip()
            name = name if name and name not in names else f"column{position}"
            while name in names:
                name += "_"
            names.append(name)
        header = _Header(names=tuple(names))
        log.info("%s: header of %s: %d columns (%s)", self.ctx.node, source or "the input", len(names), ", ".join(names))
        return header

    @staticmethod
    def _headerless(source: str | None, header: _Header | None) -> str:
        """Why a row has no column names: its source's header line is unseen, or did not parse."""
        of = f" of {source}" if source is not None else ""
        if header is None:
            return f"no header line{of} seen to name the columns (did reading start inside the file?)"
        return f"no column names: the header line{of} did not parse"

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with one column per field; malformed lines follow `on_error`, header lines are consumed."""
        lines = lines_of(batch, self.config.field, self.ctx.node, self.config.on_error)
        if isinstance(lines, StageOutput):
            return lines
        rows = batch.num_rows
        parsed = ParsedRows()
        if self.config.header:
            groups = self._group_by_header(batch, lines, parsed)
        else:
            groups = [(self._names, np.arange(rows))]
        self._split_groups(lines, groups, parsed)
        if parsed.consumed:
            self.ctx.counters.add(HEADER_COUNTER, len(parsed.consumed))
        if parsed.failed:
            log.debug("%s: %d of %d lines are not well-formed rows", self.ctx.node, len(parsed.failed), rows)
        return finish(batch, lines, parsed, self.config.target, self.ctx.node, self.config.on_error)

    def _group_by_header(
        self, batch: pa.RecordBatch, lines: pa.Array, parsed: ParsedRows
    ) -> list[tuple[tuple[str, ...], np.ndarray]]:
        """Rows grouped by the header naming them; header lines go to `parsed.consumed`, headerless rows fail."""
        rows = batch.num_rows
        names = batch.schema.names
        keys = batch.column(_SOURCE).cast(pa.string()).to_pylist() if _SOURCE in names else [None] * rows
        numbers = None
        if LINE_COLUMN in names and pa.types.is_integer(batch.schema.field(LINE_COLUMN).type):
            numbers = batch.column(LINE_COLUMN).to_pylist()
        nulls = lines.is_null().to_numpy(zero_copy_only=False)
        groups: dict[_Header, list[int]] = {}
        failures: list[tuple[int, str]] = []
        with self._lock:
            for row in range(rows):
                if nulls[row]:
                    groups.setdefault(_NO_FIELDS, []).append(row)
                    continue
                key = keys[row]
                number = numbers[row] if numbers is not None else None
                starts = number == 1 if number is not None else key not in self._headers
                if starts:
                    read = self._headers[key] = self._read_header(lines[row].as_py(), key)
                    if read.error:
                        failures.append((row, read.error))
                    else:
                        parsed.consumed.append(row)
                    continue
                header = self._headers.get(key)
                if header is None or header.error:
                    failures.append((row, self._headerless(key, header)))
                else:
                    groups.setdefault(header, []).append(row)
        parsed.failed = [row for row, _ in failures]
        parsed.errors = [error for _, error in failures]
        return [(header.names, np.array(members)) for header, members in groups.items()]

    def _split_groups(self, lines: pa.Array, groups: list[tuple[tuple[str, ...], np.ndarray]], parsed: ParsedRows) -> None:
        """Split each group's lines and name its fields; the columns go to `parsed`, over the kept rows in order."""
        pieces: list[tuple[np.ndarray, dict[str, pa.Array]]] = []
        failures = dict(zip(parsed.failed, parsed.errors))
        for names, members in groups:
            group = lines if len(members) == len(lines) else lines.take(pa.array(members))
            fields, failed, errors = self._splitter.split_array(group)
            for local, error in zip(failed, errors):
                failures[int(members[local])] = error
            kept = np.delete(members, failed) if failed else members
            width = int(pc.max(pc.list_value_length(fields)).as_py() or 0)
            named = _names_for(names, width)
            pieces.append((kept, dict(zip(named, field_columns(fields, len(named))))))
        parsed.failed = sorted(failures)
        parsed.errors = [failures[row] for row in parsed.failed]
        parsed.names = list(dict.fromkeys(name for _, columns in pieces for name in columns))
        order = np.argsort(np.concatenate([kept for kept, _ in pieces]), kind="stable") if len(pieces) > 1 else None
        for name in parsed.names:
            parts = [columns.get(name, pa.nulls(len(kept), pa.string())) for kept, columns in pieces]
            column = parts[0] if order is None else pa.concat_arrays(parts).take(pa.array(order))
            parsed.columns.append(self._finish_column(column))

    def _finish_column(self, column: pa.Array) -> pa.Array:
        if not (self.config.skip_empty_values or self.config.infer_types):
            return column
        column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
        return _typed_column(column) if self.config.infer_types else column
