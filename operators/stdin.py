"""The `stdin` source: log lines piped into the process (`tail -F app.log | loglake run …`)."""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Mapping
from typing import Any, BinaryIO, Literal

import pyarrow as pa

from loglake.operators.lines import CHUNK_SIZE, LINE_FIELDS, LINE_TYPES, LineReader, LinesConfig
from loglake.schemas.connectors import EndOfInput
from loglake.schemas.errors import TerminalError
from loglake.schemas.registry import register_source
from loglake.schemas.stage import NodeContext

__all__ = ["StdinConfig", "StdinSource", "StdinPartition"]

log = logging.getLogger(__name__)

_PARTITION = "stdin"
_QUEUE_CHUNKS = 16
_PUT_TIMEOUT = 0.1


class StdinConfig(LinesConfig):
    """Read log lines from standard input until it closes; one partition, not resumable.

    Example:
        piped: {type: stdin, max_line_size: 1MiB}
    """

    type: Literal["stdin"]


@register_source(StdinConfig)
class StdinSource:
    """Standard input (or the binary `stream` given, for tests) as a single partition named `stdin`."""

    def __init__(self, config: StdinConfig, ctx: NodeContext, *, stream: BinaryIO | None = None) -> None:
        self._config = config
        self._ctx = ctx
        self._stream = stream

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str]:
        """The lines' columns: `message`, `source`, `_line` and, for a cut line, `_truncated`."""
        return LINE_FIELDS

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The lines' columns' types (text, but `_line` int64 and `_truncated` bool)."""
        return dict(LINE_TYPES)

    def partitions(self) -> list[str]:
        """The one partition, `stdin`."""
        return [_PARTITION]

    def open(self, partition: str, resume: Any | None) -> StdinPartition:
        """Start reading the stream in a background thread; `resume` cannot apply and is ignored."""
        if partition != _PARTITION:
            raise ValueError(f"{self._ctx.node}: the stdin source has one partition, '{_PARTITION}', not '{partition}'")
        if resume is not None:
            log.warning("%s: standard input cannot be resumed; reading what arrives from now on", self._ctx.node)
        stream = self._stream if self._stream is not None else _stdin_bytes(self._ctx.node)
        return StdinPartition(stream, self._config, self._ctx)


def _stdin_bytes(node: str) -> BinaryIO:
    """The process's standard input as bytes; a TerminalError when it has none (started detached)."""
    if sys.stdin is None:
        raise TerminalError("this process has no standard input to read", node)
    return sys.stdin.buffer


class StdinPartition:
    """Lines of a binary stream; a daemon thread reads it into a bounded queue so `read` never blocks."""

    def __init__(self, stream: BinaryIO, config: StdinConfig, ctx: NodeContext) -> None:
        self._node = ctx.node
        self._reader = LineReader(config, ctx, _PARTITION)
        self._chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=_QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._at_eof = False
        self._ended = False
        self._thread = threading.Thread(target=self._pump, args=(stream,), name=f"{ctx.node}-stdin", daemon=True)
        self._thread.start()
        log.info("%s: reading standard input", self._node)

    def read(self) -> pa.RecordBatch | None:
        """The next batch of lines, None when none is complete yet, `EndOfInput` once the stream closed and all is read."""
        if self._ended:
            raise EndOfInput
        self._drain()
        batch = self._reader.take(final=self._at_eof)
        if batch is not None or not self._at_eof:
            return batch
        self._ended = True
        log.info("%s: standard input closed after %d lines", self._node, self._reader.line)
        raise EndOfInput

    def position(self) -> None:
        """None: standard input cannot be read again."""
        return None

    def close(self) -> None:
        """Stop the reading thread at its next chunk (it is a daemon: a blocked read does not keep the process up)."""
        self._stop.set()

    def _drain(self) -> None:
        """Feed queued chunks to the line reader until a batch is full or the queue is empty."""
        while not self._at_eof and self._reader.wants_more:
            try:
                item = self._chunks.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, BaseException):
                raise TerminalError(f"cannot read standard input: {item}", self._node) from item
            if item is None:
                self._at_eof = True
                return
            self._reader.feed(item)

    def _pump(self, stream: BinaryIO) -> None:
        """Thread body: move chunks from the stream to the queue; None marks the end, an exception a failure."""
        read = getattr(stream, "read1", stream.read)  # read1: what is available, without waiting for a full chunk
        item: bytes | BaseException | None
        try:
            while not self._stop.is_set():
                item = read(CHUNK_SIZE)
                if not item:
                    break
                self._put(item)
            item = None
        except (OSError, ValueError) as exc:
            item = exc
        self._put(item)

    def _put(self, item: bytes | BaseException | None) -> None:
        """Queue an item, waiting while the queue is full, unless the partition is closed."""
        while not self._stop.is_set():
            try:
                self._chunks.put(item, timeout=_PUT_TIMEOUT)
                return
            except queue.Full:
                continue
