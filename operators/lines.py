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

__all__ = ["CHUNK_SIZE", "TRUNCATED_COLUMN", "LinesConfig", "LineReader"]

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
"""Bytes a source reads at a time."""
TRUNCATED_COLUMN = "_truncated"
"""Boolean column marking lines cut to `max_line_size`; present only in batches that have one."""

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
        except LookupError:
            raise ValueError(f"unknown encoding '{value}'; use a Python codec name such as utf-8 or latin-1") from None
        if "\n".encode(name) != _NEWLINE:
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
        self._buf = b""
        self._start = 0  # buffer index of the first byte not yet split into `_pending`
        self._partial = 0  # buffer index where the line still waiting for its newline begins
        self._complete = 0  # newlines in _buf[_start:_partial]
        self._dropping = False  # the partial line is over the limit: drop bytes until its newline
        self._overflow: dict[int, int] = {}  # buffer index of a line start -> bytes dropped from that line
        self._pending = pa.array([], pa.binary())  # split lines not yet taken
        self._pending_overflow: dict[int, int] = {}  # index in _pending -> bytes dropped from that line

    @property
    def buffered_lines(self) -> int:
        """Complete lines fed and not yet taken."""
        return len(self._pending) + self._complete

    @property
    def buffered_bytes(self) -> int:
        """Bytes fed and not yet taken (kept bytes only)."""
        return _span(self._pending, 0, len(self._pending)) + len(self._buf) - self._start

    @property
    def wants_more(self) -> bool:
        """Whether another chunk fits before the next batch is full."""
        return self.buffered_lines < self._config.batch_size and self.buffered_bytes < self._config.batch_bytes

    @property
    def has_partial(self) -> bool:
        """Whether bytes of a line without its newline are buffered."""
        return self._partial < len(self._buf) or self._partial in self._overflow

    def feed(self, chunk: bytes) -> None:
        """Append bytes read from the stream."""
        if self._dropping:
            chunk = self._drop_until_newline(chunk)
        if not chunk:
            return
        if self._start:
            self._compact()
        base = len(self._buf)
        self._buf += chunk
        last = chunk.rfind(_NEWLINE)
        if last >= 0:
            self._complete += chunk.count(_NEWLINE)
            self._partial = base + last + 1
        self._cap_partial()

    def take(self, final: bool = False) -> pa.RecordBatch | None:
        """The next batch of complete lines, or None; with `final`, a last line without newline counts too."""
        if self._complete:
            self._split_complete()
        if len(self._pending):
            return self._take_pending()
        if final and self.has_partial:
            return self._take_partial()
        return None

    def _drop_until_newline(self, chunk: bytes) -> bytes:
        newline = chunk.find(_NEWLINE)
        dropped = len(chunk) if newline < 0 else newline
        self._overflow[self._partial] = self._overflow.get(self._partial, 0) + dropped
        if newline < 0:
            return b""
        self._dropping = False
        return chunk[newline:]

    def _compact(self) -> None:
        shift = self._start
        self._buf = self._buf[shift:]
        self._partial -= shift
        self._overflow = {at - shift: extra for at, extra in self._overflow.items()}
        self._start = 0

    def _cap_partial(self) -> None:
        # One byte more than the limit is kept: it may be the `\r` of a `\r\n`.
        excess = len(self._buf) - self._partial - (self._config.max_line_size + 1)
        if excess > 0:
            self._buf = self._buf[: len(self._buf) - excess]
            self._overflow[self._partial] = self._overflow.get(self._partial, 0) + excess
            self._dropping = True

    def _split_complete(self) -> None:
        """Split every complete buffered line at once, after the lines still pending."""
        end = self._partial - 1  # the last newline, left out
        lines = pc.split_pattern(_binary_view(self._buf, self._start, end), _NEWLINE).flatten()
        keep = len(self._pending)
        for at in sorted(at for at in self._overflow if at < self._partial):
            self._pending_overflow[keep + self._buf.count(_NEWLINE, self._start, at)] = self._overflow.pop(at)
        self._pending = pa.concat_arrays([self._pending, lines]) if keep else lines
        self._start, self._complete = self._partial, 0

    def _take_pending(self) -> pa.RecordBatch:
        count = self._fit(min(self._config.batch_size, len(self._pending)))
        lines = self._pending.slice(0, count)
        dropped = {at: extra for at, extra in self._pending_overflow.items() if at < count}
        consumed = _span(self._pending, 0, count) + sum(dropped.values())
        self._pending = self._pending.slice(count)
        self._pending_overflow = {at - count: extra for at, extra in self._pending_overflow.items() if at >= count}
        return self._build(lines, sorted(dropped), consumed)

    def _fit(self, count: int) -> int:
        """The most of the first `count` pending lines that fit `batch_bytes` (at least one)."""
        limit = self._config.batch_bytes
        if _span(self._pending, 0, count) <= limit:
            return count
        low, high = 1, count  # span(low) fits or low == 1; span(high) does not
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if _span(self._pending, 0, middle) <= limit else (low, middle)
        return low

    def _take_partial(self) -> pa.RecordBatch:
        line = self._buf[self._partial :]
        dropped = self._overflow.pop(self._partial, 0)
        self._buf, self._start, self._partial, self._dropping = b"", 0, 0, False
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
            LINE_COLUMN: pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), count), start=first - 1),
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
        over = pc.greater(pc.binary_length(lines), limit)
        if not overflowed and not pc.any(over).as_py():
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
            return pc.split_pattern(pa.array([text], pa.string()), "\n").flatten(), []
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return self._decode_each(lines)

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
    offsets = pa.array([0, end - start], pa.int32()).buffers()[1]
    return pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(data).slice(start, end - start)])


def _span(lines: pa.Array, start: int, stop: int) -> int:
    """Stream bytes of lines[start:stop] with their newlines (before any line-ending removal)."""
    if stop <= start:
        return 0
    offsets = memoryview(lines.buffers()[1]).cast("i")
    return int(offsets[lines.offset + stop] - offsets[lines.offset + start] + (stop - start))


def _strip_carriage_returns(lines: pa.Array) -> pa.Array:
    """Drop one trailing `\\r` (of a `\\r\\n` line ending) from every line that has it."""
    crlf = pc.ends_with(lines, pattern=b"\r")
    if not pc.any(crlf).as_py():
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
