"""The `stdout` sink: records as JSON lines on standard output, for local runs and piping into `jq`."""

from __future__ import annotations

import sys
import threading
from typing import BinaryIO, Literal

import pyarrow as pa

from loglake.schemas.config import SinkConfig
from loglake.schemas.errors import TerminalError
from loglake.schemas.json_codec import json_objects
from loglake.schemas.registry import register_sink
from loglake.schemas.stage import NodeContext

__all__ = ["StdoutConfig", "StdoutSink", "StdoutSinkWriter", "json_lines"]

_LINES_LOCK = threading.Lock()
"""Held while a batch's lines are written, so lines of concurrent writers (and sinks) never interleave."""


class StdoutConfig(SinkConfig):
    """Print records to standard output, one JSON object per line.

    Example:
        show: {type: stdout, inputs: [parse]}
    """

    type: Literal["stdout"]
    format: Literal["json"] = "json"
    """Line format: `json` writes each record as one JSON object (timestamps in ISO 8601 UTC, bytes in base64)."""


def json_lines(batch: pa.RecordBatch | pa.Table) -> bytes:
    """The batch as JSON lines (`{"timestamp":"2015-05-17T10:05:03Z",…}\\n` per record); nanoseconds are cut to µs."""
    return b"".join(json_objects(batch, newline=True))


class StdoutSinkWriter:
    """Writes whole batches of lines at once under a shared lock."""

    def __init__(self, ctx: NodeContext, stream: BinaryIO | None) -> None:
        self._ctx = ctx
        self._stream = stream

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Print the batch's records; an empty batch prints nothing."""
        if not batch.num_rows:
            return
        data = json_lines(batch)
        self._output(data)
        self._ctx.counters.add("records_out", batch.num_rows)

    def close(self) -> None:
        """Flush the stream."""
        self._output(b"")

    def abort(self) -> None:
        """Nothing to undo: printed lines are out."""

    def _output(self, data: bytes) -> None:
        try:
            with _LINES_LOCK:
                stream = self._stream if self._stream is not None else _stdout_bytes()
                if data:
                    stream.write(data)
                stream.flush()
        except (OSError, ValueError) as exc:
            raise TerminalError(f"cannot write to standard output: {exc}", node=self._ctx.node) from exc


def _stdout_bytes() -> BinaryIO:
    """The current `sys.stdout`'s byte stream, after flushing any text already printed to it (keeps lines in order)."""
    sys.stdout.flush()
    return sys.stdout.buffer


@register_sink(StdoutConfig)
class StdoutSink:
    """Standard output (or, for tests, any binary stream given as `stream`)."""

    def __init__(self, config: StdoutConfig, ctx: NodeContext, *, stream: BinaryIO | None = None) -> None:
        self.config = config
        self._ctx = ctx
        self._stream = stream

    def open(self, worker_index: int, worker_count: int) -> StdoutSinkWriter:
        """A writer for one worker; all writers share the stream and its lock."""
        return StdoutSinkWriter(self._ctx, self._stream)
