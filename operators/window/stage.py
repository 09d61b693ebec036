"""The `window` stage: per-group aggregates over tumbling, sliding or session windows, closed by a watermark.

The stage is engine-agnostic. Its state is a `WindowState` handed to `apply`/`on_flush`, so the engine can
keep one per key bucket in its own keyed state (`route` splits a batch by group, `progress` is computed on
the whole batch first so every bucket learns every partition's progress). `process`/`flush` run the same
code on one internal state, for single-threaded use.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loglake.operators.window.aggregates import Plan, Prepared, prepare_inputs
from loglake.operators.window.columns import event_times, group_ids, is_nested, key_hashes, read_path
from loglake.operators.window.config import RESERVED_COLUMNS, WindowConfig
from loglake.operators.window.expressions import parse_aggregates
from loglake.operators.window.state import Closed, FixedWindows, SessionWindows, Windows, WindowState
from loglake.operators.window.watermark import ANONYMOUS_PARTITION, batch_progress
from loglake.schemas.errors import ConfigError
from loglake.schemas.records import TIMESTAMP_TYPE
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, partition_of, split_failures

__all__ = ["WindowStage", "LATE_COUNTER", "AGGREGATE_ERRORS_COUNTER", "MISSING_COUNTER_PREFIX"]

log = logging.getLogger(__name__)

LATE_COUNTER = "late"
"""Counter of records sent to `late`."""
AGGREGATE_ERRORS_COUNTER = "aggregate_errors"
"""Counter of values an aggregate could not use (a non-number for sum/avg/quantile, a nested value), read as null."""
MISSING_COUNTER_PREFIX = "missing:"
"""`missing:<field>` counts records of batches that lacked a field the stage reads (read as null)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _micros(value: datetime | timedelta) -> int:
    """µs since the epoch (a UTC-aware datetime) or in a duration."""
    span = value - _EPOCH if isinstance(value, datetime) else value
    return span.days * 86_400_000_000 + span.seconds * 1_000_000 + span.microseconds


def _now() -> datetime:
    return datetime.now(timezone.utc)


@register_stage(WindowConfig)
class WindowStage:
    """Pre-aggregates each batch per (group, window) with one pyarrow group_by and merges the partials into state.

    Rows come out when their window closes: when the watermark (the minimum progress of the source partitions,
    see `watermark`) reaches window end + `allowed_lateness`, or when every partition has ended.
    """

    outputs: ClassVar[tuple[str, ...]] = ("late", "dropped")

    def __init__(self, config: WindowConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        self.plan = Plan(parse_aggregates(config.aggregate, config.group_by))
        lateness = _micros(config.allowed_lateness)
        self.windows: Windows
        if config.session is not None:
            self.windows = SessionWindows(self.plan, _micros(config.session.gap), lateness)
        else:
            size = _micros(config.sliding.size if config.sliding is not None else config.tumbling or timedelta(0))
            every = _micros(config.sliding.every) if config.sliding is not None else size
            self.windows = FixedWindows(self.plan, size, every, lateness)
        self._idle_timeout = _micros(config.idle_timeout)
        self._max_future = _micros(config.max_future)
        self._processing = config.time == "processing"
        self.state = self.new_state()
        """The state `process` and `flush` use; replace it with `new_state(partitions)` to wait for known partitions."""
        self._lock = threading.Lock()
        self._reads = (*(() if self._processing else (config.time_field,)), *config.group_by, *(field for _, field in self.plan.inputs))
        self._late_read = True
        """Whether some node reads `late` (whose records keep every field); until told, assume so."""

    # -- the FlushingStage protocol, on one state -------------------------------------------------------------

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """Fold a batch into the stage's state; closed windows, late and failed records come out."""
        now = _now()
        partition = partition_of(batch)
        with self._lock:
            return self.apply(self.state, batch, ANONYMOUS_PARTITION if partition is None else partition, self.progress(batch, now), now)

    def flush(self, ended: str | None) -> StageOutput | None:
        """Windows that close now: on a tick (`ended` None) as idle partitions or the wall clock allow, at the
        end of partition `ended` as its end allows (every window once no partition is live)."""
        with self._lock:
            return self.on_flush(self.state, ended, _now())

    def read_ports(self, ports: frozenset[str]) -> None:
        """Told which extra outputs some node reads: when nobody reads `late`, `route` ships only the read columns."""
        self._late_read = "late" in ports

    # -- fields (checked before the run) ---------------------------------------------------------------------

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str]:
        """Window rows: the window's own columns, the group fields (named as written) and the aggregates."""
        return frozenset((*RESERVED_COLUMNS, *self.config.group_by, *(aggregate.call.name for aggregate in self.plan.aggregates)))

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The window's own columns (UTC timestamps) and the aggregates whose type is fixed or follows a field of known type.

        Group fields are left unknown: a group column takes the type its field first had at run time.
        """
        types: dict[str, pa.DataType] = dict.fromkeys(RESERVED_COLUMNS, TIMESTAMP_TYPE)
        for aggregate in self.plan.aggregates:
            field = aggregate.call.field
            if aggregate.output is not None:
                types[aggregate.call.name] = aggregate.output
            elif field is not None and field in upstream:
                types[aggregate.call.name] = aggregate.output_type(upstream[field])
        return types

    def check_fields(self, upstream: frozenset[str]) -> list[ConfigError]:
        """A ConfigError for each field the window reads that no record reaching it has (`upstream`: all they may have)."""
        read = [] if self._processing else [("time_field", self.config.time_field)]
        read += [(f"group_by.{index}", name) for index, name in enumerate(self.config.group_by)]
        read += [(f"aggregate.{a.call.name}", a.call.field) for a in self.plan.aggregates if a.call.field is not None]
        return [
            ConfigError(f"no record reaching this window has a field '{name}'{_hint(name, upstream)}", field=where)
            for where, name in read
            if name not in upstream and name.split(".")[0] not in upstream
        ]

    # -- engine hooks --------------------------------------------------------------------------------------

    def new_state(self, partitions: Iterable[str] = (), now: datetime | None = None) -> WindowState:
        """An empty, picklable state, waiting for `partitions` from wall-clock `now` on.

        Each expected source partition holds the watermark back from the start, until it sends, ends or idles,
        so a reader that starts late does not find its records late. Partitions not listed are learnt from
        their first batch.
        """
        state = WindowState()
        at = _micros(now or _now())
        for partition in partitions:
            state.watermark.expect(partition, at)
        return state

    def route(self, batch: pa.RecordBatch, buckets: int) -> list[pa.RecordBatch]:
        """`batch` split into `buckets` batches by a stable hash of the group key (the same in every process).

        Records keep their order; every part keeps the partition tag, empty parts included. The parts may go
        to other processes, so when no node reads `late` they carry only the columns the window reads (see
        `_shipped`); otherwise every column.
        """
        if buckets < 1:
            raise ValueError(f"buckets must be at least 1, got {buckets}")
        if buckets == 1 or batch.num_rows == 0:
            return [batch] + [batch.slice(0, 0)] * (buckets - 1)
        batch = batch if self._late_read else self._shipped(batch)
        columns = [read_path(batch, name) for name in self.config.group_by]
        groups = group_ids([None if c is None or is_nested(c.type) else c for c in columns], batch.num_rows)
        bucket = (key_hashes(groups) % np.uint64(buckets)).astype(np.int64)
        order = np.argsort(bucket, kind="stable")
        ordered = batch.take(pa.array(order, pa.int64()))
        bounds = np.concatenate(([0], np.cumsum(np.bincount(bucket, minlength=buckets)))).tolist()
        return [ordered.slice(begin, end - begin) for begin, end in zip(bounds[:-1], bounds[1:])]

    def _shipped(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The columns the window reads (time, groups, aggregate fields), or the whole batch when a record of it
        will fail here (no usable time, a nested group): its dead letter keeps every field."""
        if not self._processing:
            _, valid, _ = event_times(read_path(batch, self.config.time_field), batch.num_rows, self.config.time_field)
            if not valid.all():
                return batch
        if any((column := read_path(batch, name)) is not None and is_nested(column.type) for name in self.config.group_by):
            return batch
        names = batch.schema.names
        keep = [index for index, name in enumerate(names) if any(read == name or read.startswith(name + ".") for read in self._reads)]
        return batch.select(keep)

    def progress(self, batch: pa.RecordBatch, now: datetime | None = None) -> datetime | None:
        """The newest event time in `batch` that may advance the watermark (at most `now + max_future`).

        None with processing time or when no record has a usable time. Compute it on the whole batch before
        `route`, and pass it to `apply` for every bucket.
        """
        if self._processing:
            return None
        times, valid, _ = event_times(read_path(batch, self.config.time_field), batch.num_rows, self.config.time_field)
        newest = batch_progress(times, valid, _micros(now or _now()), self._max_future)
        return None if newest is None else _EPOCH + timedelta(microseconds=newest)

    def apply(self, state: WindowState, rows: pa.RecordBatch, partition: str, progress: datetime | None, now: datetime) -> StageOutput:
        """Fold `rows` (from source `partition`, at wall-clock `now`) into `state`; close what the watermark passed.

        Records are judged late against the watermark before this batch's own progress counts.
        """
        at = _micros(now)
        watermark = self._advance(state, at)
        failed, reasons, good, times = self._split_failures(rows, at)
        late = self._fold(state, good, times, watermark) if good.num_rows else good
        state.watermark.heard(partition, None if progress is None else _micros(progress), at)
        output = self._emit(state, self.windows.close(state, self._advance(state, at)))
        if failed.num_rows:
            routed = split_failures(output.main, failed, reasons, self.ctx.node, self.config.on_error)
            output.extra, output.discarded = routed.extra, routed.discarded
        if late.num_rows:
            self.ctx.counters.add(LATE_COUNTER, late.num_rows)
            output.extra["late"] = late
        return output

    def on_flush(self, state: WindowState, ended: str | None, now: datetime) -> StageOutput | None:
        """An idle tick (`ended` None) or the end of partition `ended`: close what the watermark now passes.

        Once no partition the state knows is live, every window closes.
        """
        if ended is not None:
            state.watermark.end(ended)
        watermark = self._advance(state, _micros(now))
        everything = ended is not None and not state.watermark.live
        closed = self.windows.close_all(state) if everything else self.windows.close(state, watermark)
        return self._emit(state, closed) if closed else None

    # -- the work ----------------------------------------------------------------------------------------

    def _advance(self, state: WindowState, now: int) -> int:
        if self._processing:
            state.watermark.raise_to(now)
            return state.watermark.value
        return state.watermark.advance(now, self._idle_timeout)

    def _split_failures(self, rows: pa.RecordBatch, now: int) -> tuple[pa.RecordBatch, list[str], pa.RecordBatch, np.ndarray]:
        """(records without a usable time or group, one reason each, the other records, and their times)."""
        count = rows.num_rows
        reasons = np.full(count, None, dtype=object)
        if self._processing:
            times, valid = np.full(count, now, dtype=np.int64), np.ones(count, dtype=bool)
        else:
            column = read_path(rows, self.config.time_field)
            self._count_missing(self.config.time_field, column, count)
            times, valid, reason = event_times(column, count, self.config.time_field)
            reasons[~valid] = reason
        for name in self.config.group_by:
            column = read_path(rows, name)
            self._count_missing(name, column, count)
            if column is not None and is_nested(column.type) and count:
                reasons[valid] = f"group_by field '{name}' holds {column.type} values; group by scalar fields (a dotted path reaches into a struct)"
                valid[:] = False
        if valid.all():
            return rows.slice(0, 0), [], rows, times
        mask = pa.array(valid)
        return rows.filter(pc.invert(mask)), reasons[~valid].tolist(), rows.filter(mask), times[valid]

    def _count_missing(self, field: str, column: pa.Array | None, rows: int) -> None:
        if column is None and rows:
            self.ctx.counters.add(MISSING_COUNTER_PREFIX + field, rows)

    def _fold(self, state: WindowState, good: pa.RecordBatch, times: np.ndarray, watermark: int) -> pa.RecordBatch:
        """Fold records (with their times) into their windows; returns the late ones."""
        columns = [read_path(good, name) for name in self.config.group_by]
        for name, column in zip(self.config.group_by, columns):
            if column is not None and not pa.types.is_null(column.type):
                state.types.setdefault(name, column.type)
        groups = group_ids(columns, good.num_rows)
        inputs, errors, missing = prepare_inputs(self.plan, good, times, state.types)
        for name in missing:
            self.ctx.counters.add(MISSING_COUNTER_PREFIX + name, good.num_rows)
        if errors:
            self.ctx.counters.add(AGGREGATE_ERRORS_COUNTER, errors)
        late = self.windows.add(state, Prepared(times, groups.ids, inputs), groups.keys, watermark)
        return good.filter(pa.array(late)) if late.any() else good.slice(0, 0)

    def _emit(self, state: WindowState, closed: list[Closed]) -> StageOutput:
        """Window rows for closed windows, ordered by window start, then group."""
        if closed:
            log.debug("%s: %d windows closed; watermark %s", self.ctx.node, len(closed), state.watermark.value)
        starts = pa.array([c.start for c in closed], pa.int64()).cast(TIMESTAMP_TYPE)
        columns: dict[str, pa.Array] = {
            "window_start": starts,
            "window_end": pa.array([c.end for c in closed], pa.int64()).cast(TIMESTAMP_TYPE),
            "timestamp": starts,
        }
        for index, name in enumerate(self.config.group_by):
            columns[name] = _array([c.group[index] for c in closed], state.types.get(name))
        partials = [c.partials for c in closed]
        for index, aggregate in enumerate(self.plan.aggregates):
            kind = aggregate.output_type(state.types.get(aggregate.call.field or ""))
            columns[aggregate.call.name] = _array(self.plan.results(index, partials), kind)
        table = pa.table(columns)
        if len(closed) > 1:
            keys = [("window_start", "ascending", "at_end"), *((name, "ascending", "at_end") for name in self.config.group_by)]
            table = table.take(pc.sort_indices(table, sort_keys=keys))
        batches = table.combine_chunks().to_batches()
        return StageOutput(main=batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema))


def _hint(path: str, fields: frozenset[str]) -> str:
    """`; did you mean 'x'?` for the closest field (a dotted path by its first part), else the fields there are."""
    head, dot, rest = path.partition(".")
    names = sorted(fields, key=lambda name: (name.startswith("_"), name))  # loglake's own `_` columns last
    close = difflib.get_close_matches(head, names, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}{dot}{rest}'?"
    shown = ", ".join(names[:8]) + (f", … {len(names) - 8} more" if len(names) > 8 else "")
    return f"; the fields that reach it: {shown}" if names else ""


def _array(values: list[Any], kind: pa.DataType | None) -> pa.Array:
    """`values` as an array of `kind`; values of mixed types (a field that changed type) as inferred, else as text."""
    try:
        return pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        pass
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        return pa.array([None if value is None else str(value) for value in values], pa.string())
