"""The `multiline` stage: join continuation lines (stack traces, wrapped messages) into one record.

Filebeat's rules: a line is a *continuation* when it matches `pattern` (or, with `negate`, when it does
not). With `match: after`, continuations are appended to the line before them; with `match: before`,
they are prepended to the line after them. Lines are grouped per `source` (each file or stream keeps its
own partial event), and the event still open at the end of a batch waits for the next batch — until
`flush_timeout` passes without a new line, or its source ends.

The open events live in a picklable `OpenEvents` handed to the engine hooks (`route`, `progress`,
`new_state`, `apply`, `on_flush`): the engine keeps one per worker bucket in Bytewax keyed state, so they
are in the crash-recovery snapshots, and `route` sends a batch whole to the bucket of its source partition,
so a partition's lines always meet the same state. `process`/`flush` run the same code on one internal state.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from loglake.schemas.config import StageConfig
from loglake.schemas.errors import ConfigError
from loglake.schemas.records import concat_batches
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, partition_of
from loglake.schemas.units import Duration

__all__ = ["MultilineConfig", "MultilineStage", "OpenEvents"]

_NO_SOURCE = "\0no-source"
"""Group key for records without a `source` column."""
_UNTAGGED = ""
"""The partition of records the engine did not tag with one (as the engine names it)."""


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
    """The open event of one source: its rows so far and when (wall clock, UTC) the last one arrived."""

    rows: pa.RecordBatch
    touched: datetime

    def __getstate__(self) -> dict[str, Any]:
        """Pickle only the event's rows, not the whole batch they are a slice of."""
        return {"rows": pa.concat_batches([self.rows]), "touched": self.touched}


@dataclass
class OpenEvents:
    """A multiline state: the open event of each (source partition, `source` value); picklable."""

    pending: dict[tuple[str, str], _Pending] = field(default_factory=dict)

    def idle(self, now: datetime, timeout: timedelta) -> list[tuple[str, str]]:
        """Keys of the events that got no line for `timeout`."""
        return [key for key, pending in self.pending.items() if now - pending.touched >= timeout]

    def of_ended(self, ended: str) -> list[tuple[str, str]]:
        """Keys of the events of partition (or `source`) `ended`; when it has none, those of untagged records.

        Untagged records belong to no partition an end marker could name, so the first end that finds
        nothing of its own releases them: nothing is held past the end of the run (at worst an event is split).
        """
        keys = [key for key in self.pending if ended in key]
        return keys or [key for key in self.pending if key[0] == _UNTAGGED]


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
        self.state = self.new_state()
        """The state `process` and `flush` use."""
        self._lock = threading.Lock()

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields (an event keeps its first line's, `field` joined)."""
        return upstream

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types (an event keeps its first line's), `field` text."""
        return {**upstream, self.config.field: pa.string()}

    # -- the FlushingStage protocol, on one state -------------------------------------------------------------

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """Complete events of this batch (with any open event carried over from the last one)."""
        with self._lock:
            return self.apply(self.state, batch, partition_of(batch) or _UNTAGGED, None, _now())

    def flush(self, ended: str | None) -> StageOutput | None:
        """On a tick, open events idle past `flush_timeout`; at the end of a partition (or `source`), its open events."""
        with self._lock:
            return self.on_flush(self.state, ended, _now())

    # -- engine hooks --------------------------------------------------------------------------------------

    def new_state(self, partitions: Iterable[str] = (), now: datetime | None = None) -> OpenEvents:
        """An empty, picklable state (events open as lines come: nothing to expect from `partitions` or `now`)."""
        return OpenEvents()

    def route(self, batch: pa.RecordBatch, buckets: int) -> list[pa.RecordBatch]:
        """`batch` whole to the bucket of its source partition (a stable hash, the same in every process); the others empty."""
        if buckets < 1:
            raise ValueError(f"buckets must be at least 1, got {buckets}")
        parts = [batch.slice(0, 0)] * buckets
        parts[zlib.adler32((partition_of(batch) or _UNTAGGED).encode()) % buckets] = batch
        return parts

    def progress(self, batch: pa.RecordBatch) -> datetime | None:
        """None: joining lines does not depend on event time."""
        return None

    def apply(self, state: OpenEvents, rows: pa.RecordBatch, partition: str, progress: datetime | None, now: datetime) -> StageOutput:
        """Join `rows` (from source `partition`, at wall-clock `now`) onto `state`'s open events; complete events come out."""
        if rows.num_rows == 0 or self.config.field not in rows.schema.names:
            return StageOutput(main=rows)  # nothing to join: records pass unchanged
        events = [self._advance(state, (partition, source), part, now) for source, part in _by_source(rows)]
        return StageOutput(main=_concat(events, rows.schema))

    def on_flush(self, state: OpenEvents, ended: str | None, now: datetime) -> StageOutput | None:
        """An idle tick (`ended` None): events idle past `flush_timeout`; the end of `ended`: its events (see `OpenEvents.of_ended`)."""
        keys = state.idle(now, self.config.flush_timeout) if ended is None else state.of_ended(ended)
        events = [self._join(state.pending.pop(key).rows, np.array([0], dtype=np.int64)) for key in keys]
        return StageOutput(main=_concat(events, events[0].schema)) if events else None

    # -- the work ----------------------------------------------------------------------------------------

    def _advance(self, state: OpenEvents, key: tuple[str, str], rows: pa.RecordBatch, now: datetime) -> pa.RecordBatch:
        """Join this source's new rows onto its open event; keep the new open event back."""
        pending = state.pending.pop(key, None)
        if pending is not None:
            rows = _concat([pending.rows, rows], None)
        starts, open_from = self._event_starts(rows)
        limit = self.config.max_lines
        full_chunks = max(rows.num_rows - open_from - 1, 0) // limit  # an open event past max_lines lets go of whole chunks
        complete = np.concatenate((_capped(starts[starts < open_from], open_from, limit), open_from + limit * np.arange(full_chunks)))
        open_from += limit * full_chunks
        if open_from < rows.num_rows:
            state.pending[key] = _Pending(rows.slice(open_from), now)
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


def _now() -> datetime:
    return datetime.now(timezone.utc)


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
