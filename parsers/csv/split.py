"""Lines into lists of fields: strictly per RFC 4180, vectorised where Arrow can do it, line by line where not."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from loglake.parsers.columns import quote_line
from loglake.schemas.parsing import ParseFailure

__all__ = ["FIELDS", "LineSplitter", "field_columns"]

FIELDS = pa.list_(pa.string())
"""The Arrow type of a batch's fields: one list of strings per line."""

_BLANK = r"^[ \t\r\n\f\v]*$"
_BLANK_RE = re.compile(_BLANK)
_WIDTH_PROBES = 16
"""Quoted lines tried, at most, to find the width of the rows Arrow's CSV reader gets."""
_MAX_STRICT_WIDTH = 1000
"""RE2's largest repeat count: wider quoted rows go through the scanner."""
_MIN_BLOCK = 1 << 20


def _re2_char(char: str) -> str:
    """`char` escaped for an RE2 pattern, inside or outside a character class."""
    return f"\\x{{{ord(char):x}}}"


def field_columns(fields: pa.ListArray, width: int) -> list[pa.Array]:
    """Column i (for i < width) of a list-of-fields array; null where a row has no i-th field."""
    lengths = pc.fill_null(pc.list_value_length(fields), 0).to_numpy(zero_copy_only=False)
    starts = fields.offsets.to_numpy()[:-1]
    values = fields.values
    return [values.take(pa.array(starts + i, mask=lengths <= i)) for i in range(width)]


class LineSplitter:
    """Splits lines into fields for one delimiter and quote character; holds no per-call state."""

    def __init__(self, delimiter: str, quote: str) -> None:
        self.delimiter = delimiter
        self.quote = quote
        self._escaped = quote * 2
        d, q = re.escape(delimiter), re.escape(quote)
        self._field = re.compile(f"{q}((?:[^{q}]++|{q}{q})*+){q}|[^{d}{q}]*+")
        q, d = _re2_char(quote), _re2_char(delimiter)
        self._strict_field = f"(?:{q}(?:[^{q}\\r\\n]|{q}{q})*{q}|[^{d}{q}\\r\\n]*)"
        """An RE2 field that cannot span lines, so a row matching it is one row to Arrow's CSV reader."""

    def split(self, line: str) -> list[str] | ParseFailure:
        """The fields of one line, or why it is not a well-formed row (with the position of what breaks it)."""
        if self.quote not in line:
            if _BLANK_RE.fullmatch(line) and self.delimiter not in line:
                return ParseFailure("empty line" if not line else f"blank line: {quote_line(line)}")
            return line.split(self.delimiter)
        fields: list[str] = []
        position, end = 0, len(line)
        while True:
            match = self._field.match(line, position)
            assert match is not None  # the plain alternative matches the empty string
            quoted = match.group(1)
            fields.append(match.group() if quoted is None else quoted.replace(self._escaped, self.quote))
            stop = match.end()
            if stop == end:
                return fields
            if line[stop] == self.delimiter:
                position = stop + 1
                continue
            if quoted is not None:
                what = f"text after the closing quote at char {stop + 1}"
            elif stop == position:
                what = f"unterminated quoted field starting at char {stop + 1}"
            else:
                what = f"quote character inside an unquoted field at char {stop + 1}"
            return ParseFailure(f"{what}: {quote_line(line)}")

    def split_array(self, lines: pa.Array) -> tuple[pa.ListArray, list[int], list[str]]:
        """Fields of the kept lines (a null line: null) in order, and the failed lines' positions and reasons.

        Lines without a quote are split by Arrow's `split_pattern`; quoted lines that are strict rows of one
        common width are read by Arrow's CSV reader; the rest (blank lines, other widths, bad rows) by `split`.
        """
        special = pc.or_(pc.match_substring(lines, self.quote), pc.match_substring_regex(lines, _BLANK))
        special = pc.fill_null(special, False)
        if not pc.any(special).as_py():
            return pc.split_pattern(lines, pattern=self.delimiter), [], []
        plain = pc.indices_nonzero(pc.invert(special)).to_numpy()
        parts: list[tuple[np.ndarray, pa.ListArray]] = [(plain, pc.split_pattern(lines.take(plain), pattern=self.delimiter))]
        rest = pc.indices_nonzero(special).to_numpy()
        texts = lines.take(rest)
        read = self._read_strict_rows(texts)
        if read is not None:
            parts.append((rest[read[0]], read[1]))
            keep = np.ones(len(rest), dtype=bool)
            keep[read[0]] = False
            rest, texts = rest[keep], texts.filter(pa.array(keep))
        failed: list[int] = []
        errors: list[str] = []
        scanned: list[list[str]] = []
        scanned_rows: list[int] = []
        for row, line in zip(rest.tolist(), texts.to_pylist()):
            result = self.split(line)
            if isinstance(result, ParseFailure):
                failed.append(row)
                errors.append(result.reason)
            else:
                scanned.append(result)
                scanned_rows.append(row)
        parts.append((np.array(scanned_rows, dtype=plain.dtype), pa.array(scanned, FIELDS)))
        order = np.argsort(np.concatenate([rows for rows, _ in parts]), kind="stable")
        return pa.concat_arrays([fields for _, fields in parts]).take(pa.array(order)), failed, errors

    def _read_strict_rows(self, texts: pa.Array) -> tuple[np.ndarray, pa.ListArray] | None:
        """Positions and fields of the lines in `texts` that are strict rows as wide as the first good one; None if none.

        Such a row means the same to Arrow's CSV reader as to `split`, so the reader parses them all at once.
        """
        width = 0
        for line in texts.to_pylist()[:_WIDTH_PROBES]:
            fields = self.split(line)
            if not isinstance(fields, ParseFailure):
                width = len(fields)
                break
        if not 0 < width <= _MAX_STRICT_WIDTH:
            return None
        field, d = self._strict_field, _re2_char(self.delimiter)
        try:
            strict = pc.match_substring_regex(texts, f"^{field}(?:{d}{field}){{{width - 1}}}$")
        except pa.ArrowInvalid:  # a pattern too large for RE2
            return None
        read = pc.indices_nonzero(strict).to_numpy()
        if not len(read):
            return None
        rows = texts.take(read)
        joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(rows)], pa.int32()), rows), "\n")[0].as_buffer()
        names = [f"f{i}" for i in range(width)]
        try:
            table = pv.read_csv(
                pa.BufferReader(joined),
                read_options=pv.ReadOptions(column_names=names, use_threads=False, block_size=max(joined.size + 1, _MIN_BLOCK)),
                parse_options=pv.ParseOptions(
                    delimiter=self.delimiter, quote_char=self.quote, double_quote=True, escape_char=False,
                    newlines_in_values=False, ignore_empty_lines=False,
                ),
                convert_options=pv.ConvertOptions(
                    column_types={name: pa.string() for name in names}, strings_can_be_null=False, quoted_strings_can_be_null=False
                ),
            )
        except pa.ArrowInvalid:
            return None
        count = table.num_rows
        if count != len(rows):
            return None
        values = pa.concat_arrays([column.combine_chunks() for column in table.columns])
        row_major = (np.arange(width)[None, :] * count + np.arange(count)[:, None]).ravel()
        offsets = pa.array(np.arange(0, count * width + 1, width, dtype=np.int32))
        return read, pa.ListArray.from_arrays(offsets, values.take(pa.array(row_major)))
