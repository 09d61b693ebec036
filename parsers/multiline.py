"""The `multiline` stage: join continuation lines (stack traces, wrapped messages) into one record.

Filebeat's rules: a line is a *continuation* when it matches `pattern` (or, with `negate`, when it does
not). With `match: after`, continuations are appended to the line before them; with `match: before`,
they are prepended to the line after them. Lines are grouped per `source` (each file or stream keeps its
own partial event), and the event still open at the end of a batch waits for the next batch — until
`flush_timeout` passes without a new line, or its source ends.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from loglake.schemas.config import StageConfig
from loglake.schemas.errors import ConfigError
from loglake.schemas.records import concat_batches
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput
from loglake.schemas.units import Duration

__all__ = ["MultilineConfig", "MultilineStage"]

_NO_SOURCE = "\0no-source"
"""Group key for records without a `source` column."""


class MultilineConfig(StageConfig):
    """Join continuation lines into one record (Java stack traces, Python tracebacks, wrapped messages).

    Example:
        events: {type: multiline, pattern: '^[[:space:]]+(at |\\.\\.\\.)|^Caused by:', match: after}
    """

    type: Literal["multiline"]
    field: str = "message"
    """Column holding the lines to join; the joined text replaces it."""
    pattern: str
    """RE2 regular expression (Filebeat's syntax) that marks a continuation line."""
    negate: bool = False
    """Lines that do NOT match `pattern` are the continuations (e.g. every line not starting with a date)."""
    match: Literal["after", "before"] = "after"
    """`after`: continuations join the line before them; `before`: they join the line after them."""
    max_lines: int = Field(default=500, ge=1)
    """An event never holds more lines than this; further continuation lines start a new event (nothing is dropped)."""
    flush_timeout: Duration = Field(default="5s", validate_default=True)
    """An open event is released when no new line has come for this long."""
    separator: str = "\n"
    """What joins the lines of one event."""


@dataclass
class _Pending:
    """The open event of one source: its rows so far and when the last one arrived."""

    rows: pa.RecordBatch
    touched: float


@register_stage(MultilineConfig)
class MultilineStage:
    """Vectorised grouping (one regex pass over the column, event starts by array arithmetic) per source."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: MultilineConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        try:
            pc.match_substring_regex(pa.array(["probe"]), config.pattern)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ConfigError(f"pattern {config.pattern!r} is not a valid RE2 expression: {exc}", field="pattern") from None
        if config.flush_timeout <= timedelta(0):
            raise ConfigError("flush_timeout must be longer than 0s", field="flush_timeout")
        self._timeout = config.flush_timeout.total_seconds()
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """Complete events of this batch (with any open event carried over from the last one)."""
        if batch.num_rows == 0:
            return StageOutput(main=batch)
        if self.config.field not in batch.schema.names:
            return StageOutput(main=batch)  # nothing to join: records pass unchanged
        events = [self._advance(key, rows) for key, rows in _by_source(batch)]
        return StageOutput(main=_concat(events, batch.schema))

    def flush(self, ended: str | None) -> StageOutput | None:
        """On a tick, open events idle past `flush_timeout`; at the end of a source, its open event.

        An end marker for a partition that matches no source key releases every open event, so that
        records are never held back past the end of the run (at worst an event is split in two).
        """
        now = time.monotonic()
        with self._lock:
            if ended is None:
                keys = [key for key, pending in self._pending.items() if now - pending.touched >= self._timeout]
            else:
                keys = [ended] if ended in self._pending else list(self._pending)
            released = [self._pending.pop(key).rows for key in keys]
        if not released:
            return None
        events = [self._join(rows, np.array([0], dtype=np.int64)) for rows in released]
        return StageOutput(main=_concat(events, events[0].schema))

    def _advance(self, key: str, rows: pa.RecordBatch) -> pa.RecordBatch:
        """Join this source's new rows onto its open event; keep the new open event back."""
        with self._lock:
            pending = self._pending.pop(key, None)
        if pending is not None:
            rows = _concat([pending.rows, rows], None)
        starts, open_from = self._event_starts(rows)
        limit = self.config.max_lines
        full_chunks = max(rows.num_rows - open_from - 1, 0) // limit  # an open event past max_lines lets go of whole chunks
        complete = np.concatenate((_capped(starts[starts < open_from], open_from, limit), open_from + limit * np.arange(full_chunks)))
        open_from += limit * full_chunks
        if open_from < rows.num_rows:
            with self._lock:
                self._pending[key] = _Pending(rows.slice(open_from), time.monotonic())
        return self._join(rows.slice(0, open_from), complete.astype(np.int64))

    def _event_starts(self, rows: pa.RecordBatch) -> tuple[np.ndarray, int]:
        """Row indices where events start, and where the last event, which may still grow, begins."""
        text = rows.column(self.config.field)
        matched = pc.fill_null(pc.match_substring_regex(pc.cast(text, pa.string()), self.config.pattern), False)
        continuation = np.asarray(matched.to_numpy(zero_copy_only=False), dtype=bool) ^ self.config.negate
        if self.config.match == "after":
            starts = np.union1d([0], np.flatnonzero(~continuation))  # a new event at every non-continuation line
            return starts, int(starts[-1])
        starts = np.concatenate(([0], np.flatnonzero(~continuation) + 1))  # an event ends at a non-continuation line
        return starts, int(starts[-1])

    def _join(self, rows: pa.RecordBatch, starts: np.ndarray) -> pa.RecordBatch:
        """One record per event: the first row's columns, the event's lines joined into `field`."""
        if rows.num_rows == 0 or starts.size == 0:
            return rows.slice(0, 0)
        lines = rows.column(self.config.field).to_pylist()
        bounds = [*starts.tolist(), rows.num_rows]
        separator = self.config.separator
        joined = [
            separator.join(line for line in lines[begin:end] if line is not None) if end - begin > 1 else lines[begin]
            for begin, end in zip(bounds[:-1], bounds[1:])
        ]
        first = rows.take(pa.array(starts, pa.int64()))
        index = first.schema.get_field_index(self.config.field)
        return first.set_column(index, first.schema.field(index).with_type(pa.string()), pa.array(joined, pa.string()))


def _capped(starts: np.ndarray, end: int, limit: int) -> np.ndarray:
    """`starts` with extra starts so that no event in [0, end) spans more than `limit` rows."""
    bounds = np.append(starts, end)
    if not np.any(np.diff(bounds) > limit):
        return starts
    return np.concatenate([np.arange(begin, stop, limit) for begin, stop in zip(bounds[:-1], bounds[1:])])


def _by_source(batch: pa.RecordBatch) -> list[tuple[str, pa.RecordBatch]]:
    """The batch split by its `source` column, each part in its original order."""
    if "source" not in batch.schema.names:
        return [(_NO_SOURCE, batch)]
    encoded = pc.dictionary_encode(batch.column("source"))
    names = encoded.dictionary.to_pylist()
    if len(names) == 1 and encoded.null_count == 0:
        return [(str(names[0]), batch)]
    indices = pc.fill_null(encoded.indices, -1).to_numpy()
    parts = []
    for code in np.unique(indices):
        key = _NO_SOURCE if code < 0 else str(names[code])
        parts.append((key, batch.take(pa.array(np.flatnonzero(indices == code), pa.int64()))))
    return parts


def _concat(batches: list[pa.RecordBatch], schema: pa.Schema | None) -> pa.RecordBatch:
    """One batch from several (schemas unified), or an empty one of `schema`."""
    batches = [b for b in batches if b.num_rows]
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=schema) if schema is not None else pa.RecordBatch.from_pydict({})
    return concat_batches(batches)
