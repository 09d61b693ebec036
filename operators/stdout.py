"""The `stdout` sink: records as JSON lines on standard output, for local runs and piping into `jq`."""

from __future__ import annotations

import base64
import sys
import threading
from datetime import timedelta
from typing import Any, BinaryIO, Literal

import orjson
import pyarrow as pa

from loglake.schemas.config import SinkConfig
from loglake.schemas.errors import TerminalError
from loglake.schemas.registry import register_sink
from loglake.schemas.stage import NodeContext

__all__ = ["StdoutConfig", "StdoutSink", "StdoutSinkWriter", "json_lines"]

_LINES_LOCK = threading.Lock()
"""Held while a batch's lines are written, so lines of concurrent writers (and sinks) never interleave."""
_JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


class StdoutConfig(SinkConfig):
    """Print records to standard output, one JSON object per line.

    Example:
        show: {type: stdout, inputs: [parse]}
    """

    type: Literal["stdout"]
    format: Literal["json"] = "json"
    """Line format: `json` writes each record as one JSON object (timestamps in ISO 8601 UTC, bytes in base64)."""


def _json_default(value: Any) -> Any:
    """JSON for what orjson does not know: bytes as base64 text, durations as seconds, the rest as text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


def _printable(data_type: pa.DataType) -> pa.DataType:
    """`data_type` with its timestamps (nested ones too) in UTC and at most µs, as Python and `Z` need."""
    if pa.types.is_timestamp(data_type):
        return pa.timestamp("us" if data_type.unit == "ns" else data_type.unit, tz="UTC" if data_type.tz else None)
    if pa.types.is_duration(data_type) and data_type.unit == "ns":
        return pa.duration("us")
    if pa.types.is_struct(data_type):
        return pa.struct([field.with_type(_printable(field.type)) for field in data_type])
    if pa.types.is_list(data_type):
        return pa.list_(data_type.value_field.with_type(_printable(data_type.value_type)))
    if pa.types.is_large_list(data_type):
        return pa.large_list(data_type.value_field.with_type(_printable(data_type.value_type)))
    return data_type


def json_lines(batch: pa.RecordBatch | pa.Table) -> bytes:
    """The batch as JSON lines (`{"timestamp":"2015-05-17T10:05:03Z",…}\\n` per record); nanoseconds are cut to µs."""
    printable = pa.schema([field.with_type(_printable(field.type)) for field in batch.schema])
    if not printable.equals(batch.schema):
        batch = batch.cast(printable, safe=False)
    return b"".join(orjson.dumps(row, default=_json_default, option=_JSON_OPTIONS) for row in batch.to_pylist())


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
