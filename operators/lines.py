"""Bytes to batches of log lines, shared by the `file` and `stdin` sources.

A `LineReader` is fed raw chunks and hands out `pyarrow.RecordBatch`es with `message`, `source` and `_line`
columns. Splitting, line-ending removal, truncation and decoding run over whole batches in Arrow; Python
touches single lines only on the slow paths (a line over `max_line_size`, bytes the encoding rejects).
"""

from __future__ import annotations

import codecs
import logging

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from loglake.schemas.config import SourceConfig
from loglake.schemas.records import LINE_COLUMN
from loglake.schemas.stage import NodeContext
from loglake.schemas.units import ByteSize

__all__ = ["CHUNK_SIZE", "TRUNCATED_COLUMN", "LINE_TYPES", "LINE_FIELDS", "LinesConfig", "LineReader"]

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
"""Bytes a source reads at a time."""
TRUNCATED_COLUMN = "_truncated"
"""Boolean column marking lines cut to `max_line_size`; present only in batches that have one."""
LINE_TYPES: dict[str, pa.DataType] = {"message": pa.string(), "source": pa.string(), LINE_COLUMN: pa.int64(), TRUNCATED_COLUMN: pa.bool_()}
"""Every column a batch of lines may have, and its type (the sources' `output_types`)."""
LINE_FIELDS = frozenset(LINE_TYPES)
"""Every column a batch of lines may have (the sources' `output_fields`)."""

_MAX_SIZE = 1 << 30
_NEWLINE = b"\n"


class LinesConfig(SourceConfig):
    """Options shared by the sources that read lines of text (`file`, `stdin`)."""

    batch_size: int = Field(default=10_000, ge=1)
    """Most lines in one batch."""
    batch_bytes: ByteSize = Field(default="4MiB", validate_default=True, gt=0, le=_MAX_SIZE)
    """Most bytes of lines in one batch (a single longer line still makes a batch)."""
    max_line_size: ByteSize = Field(default="8MiB", validate_default=True, gt=0, le=_MAX_SIZE)
    """Longest line kept whole, in bytes without its line ending; longer lines are cut and flagged `_truncated`."""
    encoding: str = "utf-8"
    """Text encoding of the input; bytes it cannot decode become U+FFFD (the line is kept and counted)."""

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, value: str) -> str:
        try:
            name = codecs.lookup(value).name
            newline = "\n".encode(name)
        except LookupError:
            raise ValueError(f"unknown encoding '{value}'; use a Python text codec name such as utf-8 or latin-1") from None
        if newline != _NEWLINE:
            raise ValueError(f"encoding '{value}' does not write a newline as the byte 0x0A; lines cannot be split in it")
        return name


class LineReader:
    """Splits bytes fed in chunks into lines and builds record batches from them.

    Tracks `offset`, the stream offset just after the last line taken (counting bytes dropped from long
    lines), and `line`, that line's number, so a source can report where to resume. Memory stays bounded:
    of a line still waiting for its newline at most `max_line_size` bytes are kept.
    """

    def __init__(self, config: LinesConfig, ctx: NodeContext, source: str) -> None:
        self._config = config
        self._ctx = ctx
        self._source = source
        self._utf8 = config.encoding == "utf-8"
        self.reset()

    def reset(self, offset: int = 0, line: int = 0) -> None:
        """Forget buffered bytes; the next byte fed is at stream `offset`, after line number `line`."""
        self.offset = offset
        self.line = line
        self._chunks: list[pa.Array] = []  # complete lines, split chunk by chunk, not yet taken
        self._lines = 0  # lines in _chunks
        self._bytes = 0  # their stream bytes, newlines included, dropped bytes not
        self._dropped: dict[int, int] = {}  # index of a line in _chunks -> bytes dropped from it
        self._tail = b""  # the start of a line still waiting for its newline
        self._tail_dropped = 0  # bytes dropped from that line (it is over the limit)

    @property
    def wants_more(self) -> bool:
        """Whether to feed another chunk: no complete line yet, or the next batch is not full."""
        if not self._lines:
            return True
        return self._lines < self._config.batch_size and self._bytes + len(self._tail) < self._config.batch_bytes

    def feed(self, chunk: bytes) -> None:
        """Append bytes read from the stream; the complete lines in them are split right away."""
        last = chunk.rfind(_NEWLINE)
        if last < 0:
            self._extend_tail(chunk)
            return
        first = chunk.find(_NEWLINE)
        self._add_first_line(chunk[:first])
        if first < last:
            self._add_lines(pc.split_pattern(_binary_view(chunk, first + 1, last), _NEWLINE).flatten())
        self._extend_tail(chunk[last + 1 :])

    def take(self, final: bool = False) -> pa.RecordBatch | None:
        """The next batch of complete lines, or None; with `final`, a last line without newline counts too."""
        if self._lines:
            return self._take_lines()
        if final and (self._tail or self._tail_dropped):
            return self._take_tail()
        return None

    def _add_first_line(self, end: bytes) -> None:
        """Finish the unfinished line with the bytes up to the chunk's first newline."""
        if self._tail_dropped:
            self._dropped[self._lines] = self._tail_dropped + len(end)
            line = self._tail
        else:
            line = self._tail + end if self._tail else end
        self._tail, self._tail_dropped = b"", 0
        self._add_lines(pa.array([line], pa.binary()))

    def _add_lines(self, lines: pa.Array) -> None:
        """Queue complete lines (binary, without their newlines) for `take`."""
        self._chunks.append(lines)
        self._lines += len(lines)
        self._bytes += _span(lines, len(lines))

    def _extend_tail(self, data: bytes) -> None:
        """Keep at most one byte over the limit of an unfinished line (it may be the `\\r` of a `\\r\\n`)."""
        if self._tail_dropped:
            self._tail_dropped += len(data)
            return
        tail = self._tail + data if self._tail else data
        keep = self._config.max_line_size + 1
        if len(tail) > keep:
            self._tail_dropped = len(tail) - keep
            tail = tail[:keep]
        self._tail = tail

    def _take_lines(self) -> pa.RecordBatch:
        if len(self._chunks) > 1:
            self._chunks = [pa.concat_arrays(self._chunks)]
        pending = self._chunks[0]
        count = _fit(pending, min(self._config.batch_size, self._lines), self._config.batch_bytes)
        dropped = {at: extra for at, extra in self._dropped.items() if at < count}
        self._dropped = {at - count: extra for at, extra in self._dropped.items() if at >= count}
        consumed = _span(pending, count)
        self._chunks = [pending.slice(count)] if count < len(pending) else []
        self._lines -= count
        self._bytes -= consumed
        return self._build(pending.slice(0, count), sorted(dropped), consumed + sum(dropped.values()))

    def _take_tail(self) -> pa.RecordBatch:
        line, dropped = self._tail, self._tail_dropped
        self._tail, self._tail_dropped = b"", 0
        return self._build(pa.array([line], pa.binary()), [0] if dropped else [], len(line) + dropped)

    def _build(self, lines: pa.Array, overflowed: list[int], consumed: int) -> pa.RecordBatch:
        """A batch from raw lines; `overflowed` lists lines that lost bytes already, `consumed` their stream bytes."""
        first = self.line + 1
        lines = _strip_carriage_returns(lines)
        lines, truncated = self._truncate(lines, overflowed)
        messages, invalid = self._decode(lines)
        count = len(messages)
        self.line += count
        self.offset += consumed
        columns = {
            "message": messages,
            "source": pa.repeat(pa.scalar(self._source, pa.string()), count),
            LINE_COLUMN: pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), count), start=pa.scalar(first - 1, pa.int64())),
        }
        if truncated:
            columns[TRUNCATED_COLUMN] = _flags(count, truncated)
            self._report("truncated_lines", truncated, first, f"longer than max_line_size ({self._config.max_line_size:,} bytes) were truncated")
        if invalid:
            self._report("invalid_utf8_lines", invalid, first, f"had bytes that are not valid {self._config.encoding}, replaced with U+FFFD")
        self._ctx.counters.add("records_in", count)
        return pa.RecordBatch.from_pydict(columns)

    def _truncate(self, lines: pa.Array, overflowed: list[int]) -> tuple[pa.Array, list[int]]:
        limit = self._config.max_line_size
        over = pc.greater(pc.binary_length(lines), pa.scalar(limit, pa.int32()))
        if not overflowed and not over.true_count:
            return lines, []
        indices = sorted(set(overflowed) | set(pc.indices_nonzero(over).to_pylist()))
        values = lines.to_pylist()
        for index in indices:
            values[index] = _cut(values[index], limit, self._utf8)
        return pa.array(values, pa.binary()), indices

    def _decode(self, lines: pa.Array) -> tuple[pa.Array, list[int]]:
        """Lines as a string array (all at once on the fast path) and the indices of lines with bad bytes."""
        try:
            if self._utf8:
                return pc.cast(lines, pa.string()), []
            text = _NEWLINE.join(lines.to_pylist()).decode(self._config.encoding)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return self._decode_each(lines)
        decoded = pc.split_pattern(pa.array([text], pa.string()), "\n").flatten()
        if len(decoded) != len(lines):  # an escape in a stateful encoding decoded to a newline
            return self._decode_each(lines)
        return decoded, []

    def _decode_each(self, lines: pa.Array) -> tuple[pa.Array, list[int]]:
        texts: list[str] = []
        invalid: list[int] = []
        for index, raw in enumerate(lines.to_pylist()):
            try:
                texts.append(raw.decode(self._config.encoding))
            except UnicodeDecodeError:
                texts.append(raw.decode(self._config.encoding, errors="replace"))
                invalid.append(index)
        return pa.array(texts, pa.string()), invalid

    def _report(self, counter: str, indices: list[int], first: int, what: str) -> None:
        self._ctx.counters.add(counter, len(indices))
        log.warning(
            "%s: %d line(s) of %s %s (first at %s:%d)",
            self._ctx.node, len(indices), self._source, what, self._source, first + indices[0],
        )


def _binary_view(data: bytes, start: int, end: int) -> pa.Array:
    """`data[start:end]` as a one-element binary array, without copying."""
    offsets = pa.array([start, end], pa.int32()).buffers()[1]
    return pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(data)])


def _span(lines: pa.Array, count: int) -> int:
    """Stream bytes of the first `count` lines with their newlines (before any line-ending removal)."""
    if count <= 0:
        return 0
    offsets = memoryview(lines.buffers()[1]).cast("i")
    return int(offsets[lines.offset + count] - offsets[lines.offset] + count)


def _fit(lines: pa.Array, count: int, limit: int) -> int:
    """How many of the first `count` lines fit in `limit` bytes (at least one)."""
    if _span(lines, count) <= limit:
        return count
    low, high = 1, count  # _span(low) fits or low is 1; _span(high) does not fit
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if _span(lines, middle) <= limit else (low, middle)
    return low


def _strip_carriage_returns(lines: pa.Array) -> pa.Array:
    """Drop one trailing `\\r` (of a `\\r\\n` line ending) from every line that has it."""
    crlf = pc.ends_with(lines, pattern=b"\r")
    if not crlf.true_count:
        return lines
    return pc.if_else(crlf, pc.binary_slice(lines, 0, -1), lines)


def _cut(line: bytes, limit: int, utf8: bool) -> bytes:
    """At most `limit` bytes of `line`; in UTF-8, never half a character."""
    cut = min(limit, len(line))
    if utf8:
        while 0 < cut < len(line) and line[cut] & 0xC0 == 0x80:
            cut -= 1
    return line[:cut]


def _flags(count: int, indices: list[int]) -> pa.Array:
    flags = [False] * count
    for index in indices:
        flags[index] = True
    return pa.array(flags, pa.bool_())
