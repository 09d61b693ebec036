"""The `dedupe` stage: drop records whose key was already seen within a time window.

The keys seen live in a picklable `SeenKeys` handed to the engine hooks (`route`, `progress`, `new_state`,
`apply`, `on_flush`): the engine keeps one per worker bucket in Bytewax keyed state, so they are in the
crash-recovery snapshots, and `route` splits a batch by a hash of the key that is the same in every
process, so a key always meets the same state whichever worker read it. `process` runs the same code on
one internal state.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import ClassVar, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from loglake.schemas.config import StageConfig
from loglake.schemas.records import TIMESTAMP_TYPE, conform_core_columns
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, partition_of
from loglake.schemas.units import Duration

__all__ = ["DedupeConfig", "DedupeStage", "SeenKeys", "DUPLICATES_COUNTER", "EVICTED_COUNTER"]

log = logging.getLogger(__name__)

DUPLICATES_COUNTER = "duplicates"
"""Counter of records dropped as duplicates."""
EVICTED_COUNTER = "dedupe_evicted"
"""Counter of keys forgotten early because `max_keys` was reached."""


class DedupeConfig(StageConfig):
    """Drop repeats of a key seen within a time window; duplicates are filtered out and counted.

    Example:
        once: {type: dedupe, key: [host, message], window: 5m}
    """

    type: Literal["dedupe"]
    key: list[str] = Field(min_length=1)
    """Fields that together make the key; a record missing any of them (or null) is never a duplicate."""
    window: Duration = Field(default="10m", validate_default=True)
    """A record whose key was kept less than this long before (or after) it is a duplicate."""
    time: Literal["event", "processing"] = "event"
    """Clock the window is measured in: `event` (the `timestamp` column; processing time for a record without one) or `processing`."""
    max_keys: int = Field(default=1_000_000, ge=1)
    """Keys each worker remembers at most (keys are spread over workers by hash); past it the oldest are forgotten first (counted as `dedupe_evicted`)."""

    @field_validator("key")
    @classmethod
    def _check_key(cls, value: list[str]) -> list[str]:
        if any(not name for name in value) or len(set(value)) != len(value):
            raise ValueError("key fields must be non-empty and listed once each")
        return value


class _Hasher:
    """Hashes key columns into uint64 with DuckDB's `hash` (seedless: the same in every process of one DuckDB version); pools connections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[duckdb.DuckDBPyConnection] = []

    def hash(self, keys: pa.Table) -> np.ndarray:
        with self._lock:
            con = self._idle.pop() if self._idle else duckdb.connect(config={"threads": 1, "autoinstall_known_extensions": False})
        try:
            columns = ", ".join('"' + name.replace('"', '""') + '"' for name in keys.column_names)
            con.register("_keys", keys)
            result = con.sql(f"SELECT hash({columns}) AS h FROM _keys").to_arrow_table()
            con.unregister("_keys")
            hashes: np.ndarray = result["h"].to_numpy()
            return hashes
        finally:
            with self._lock:
                self._idle.append(con)


_UNSEEN = -(2**62)
"""The time of a key not in the state (and the clock before any record)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _micros(value: datetime) -> int:
    """µs since the epoch of a UTC-aware datetime."""
    return (value - _EPOCH) // timedelta(microseconds=1)


@dataclass
class SeenKeys:
    """A dedupe state: 64-bit key hash → time (µs since the epoch) of the key's last kept record, oldest first,
    and the newest time seen (the clock that expires keys); picklable."""

    times: OrderedDict[int, int] = field(default_factory=OrderedDict)
    clock: int = _UNSEEN


@register_stage(DedupeConfig)
class DedupeStage:
    """Sorts each batch by (key hash, time), decides first occurrences with numpy, and keeps per-key state.

    The state (`SeenKeys`) is insertion-ordered: expired keys (older than the window behind the newest time
    seen) are swept from its front each batch, and the oldest keys are evicted when `max_keys` is exceeded.
    A 64-bit hash makes a false duplicate among a million keys about a one-in-ten-million chance.
    """

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: DedupeConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        self._window = config.window // timedelta(microseconds=1)
        self._hasher = _Hasher()
        self.state = self.new_state()
        """The state `process` uses."""
        self._lock = threading.Lock()

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields (records are kept or not, never changed)."""
        return upstream

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types (records are kept or not, never changed)."""
        return dict(upstream)

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch without records whose key was kept within the window; order is preserved."""
        with self._lock:
            return self.apply(self.state, batch, partition_of(batch) or "", self.progress(batch), datetime.now(timezone.utc))

    # -- engine hooks --------------------------------------------------------------------------------------

    def new_state(self, partitions: Iterable[str] = (), now: datetime | None = None) -> SeenKeys:
        """An empty, picklable state (keys are learnt as records come: nothing to expect from `partitions` or `now`)."""
        return SeenKeys()

    def route(self, batch: pa.RecordBatch, buckets: int) -> list[pa.RecordBatch]:
        """`batch` split into `buckets` batches by key hash, records in order; an incomplete key goes to bucket 0."""
        if buckets < 1:
            raise ValueError(f"buckets must be at least 1, got {buckets}")
        bucket = np.zeros(batch.num_rows, dtype=np.uint64)
        if buckets > 1:
            rows, hashes = self._hashed_keys(batch)
            bucket[rows] = hashes % np.uint64(buckets)
        return [batch.filter(pa.array(bucket == index)) for index in range(buckets)]

    def progress(self, batch: pa.RecordBatch) -> datetime | None:
        """The newest event time in `batch` (None with processing time or none known): each bucket's clock
        moves with every batch, as one state's would."""
        micros = self._event_micros(batch)
        newest = None if micros is None else pc.max(micros).as_py()
        return None if newest is None else _EPOCH + timedelta(microseconds=newest)

    def apply(self, state: SeenKeys, rows: pa.RecordBatch, partition: str, progress: datetime | None, now: datetime) -> StageOutput:
        """`rows` without the records whose key `state` kept within the window (order kept); `state` learns the rest.

        `progress` is the newest event time of the whole batch `rows` came from (see `progress`).
        """
        newest = None if progress is None else _micros(progress)
        selected, hashes = self._hashed_keys(rows)
        if selected.size == 0:
            if newest is not None:
                self._expire(state, newest)
            return StageOutput(main=rows)
        times = self._times(rows, _micros(now))[selected]
        order = np.lexsort((times, hashes))  # stable: equal (key, time) keep record order
        hs, ts, rs = hashes[order], times[order], selected[order]
        duplicate = self._decide(state, hs, ts)
        evicted = self._expire(state, newest if newest is not None else int(ts.max()))
        self._count(state, evicted, int(duplicate.sum()), rows.num_rows)
        if not duplicate.any():
            return StageOutput(main=rows)
        keep = np.ones(rows.num_rows, dtype=bool)
        keep[rs[duplicate]] = False
        return StageOutput(main=rows.filter(pa.array(keep)))

    def on_flush(self, state: SeenKeys, ended: str | None, now: datetime) -> StageOutput | None:
        """None: dedupe holds no records back."""
        return None

    # -- the work ----------------------------------------------------------------------------------------

    def _hashed_keys(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """The rows whose key is complete (no field missing or null), and their keys' 64-bit hashes."""
        none = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64))
        if batch.num_rows == 0 or any(name not in batch.schema.names for name in self.config.key):
            return none
        keys = pa.Table.from_batches([batch.select(self.config.key)])
        valid = functools.reduce(pc.and_, [pc.is_valid(column) for column in keys.columns])
        rows = np.flatnonzero(valid.combine_chunks().to_numpy(zero_copy_only=False))
        if rows.size == 0:
            return none
        return rows, self._hasher.hash(keys.take(pa.array(rows))).astype(np.uint64)

    def _event_micros(self, batch: pa.RecordBatch) -> pa.Array | None:
        """Per record, event time in µs since the epoch (null where unknown); None with processing time or no `timestamp`."""
        if self.config.time == "processing" or "timestamp" not in batch.schema.names:
            return None
        column = conform_core_columns(batch.select(["timestamp"])).column(0)
        micros: pa.Array = pc.cast(pc.cast(column, TIMESTAMP_TYPE), pa.int64())
        return micros

    def _times(self, batch: pa.RecordBatch, now: int) -> np.ndarray:
        """Per record, the time its key is judged by (µs since the epoch): its event time, else `now`."""
        micros = self._event_micros(batch)
        if micros is None:
            return np.full(batch.num_rows, now, dtype=np.int64)
        times: np.ndarray = pc.fill_null(micros, now).to_numpy(zero_copy_only=False)
        return times

    def _count(self, state: SeenKeys, evicted: int, dropped: int, records: int) -> None:
        if evicted:
            self.ctx.counters.add(EVICTED_COUNTER, evicted)
        if dropped:
            self.ctx.counters.add(DUPLICATES_COUNTER, dropped)
            log.debug("%s: %d of %d records were duplicates; %d keys held", self.ctx.node, dropped, records, len(state.times))

    def _decide(self, state: SeenKeys, hs: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Duplicate flags for records sorted by (hash, time); `state` keeps each key's latest kept time."""
        window, times = self._window, state.times
        starts = np.flatnonzero(np.r_[True, hs[1:] != hs[:-1]])
        group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, hs.size]))
        distinct = hs[starts].tolist()
        anchors = np.array([times.get(h, _UNSEEN) for h in distinct], dtype=np.int64)
        # Common case: the group's records are all within the window of the stored anchor, or (no anchor)
        # of the group's first record; anything else is settled one group at a time below.
        row_anchor = anchors[group]
        near_anchor = np.abs(ts - row_anchor) < window
        first = np.where(anchors == _UNSEEN, ts[starts], 0)[group]
        duplicate = np.where(anchors[group] == _UNSEEN, np.abs(ts - first) < window, near_anchor)
        duplicate[starts[anchors == _UNSEEN]] = False
        kept_time = np.where(anchors == _UNSEEN, ts[starts], anchors)
        hard = np.zeros(starts.size, dtype=bool)
        np.logical_or.at(hard, group, ~duplicate)
        hard &= anchors != _UNSEEN  # an anchored group with a record to keep
        np.logical_or.at(hard, group, ~duplicate & (np.arange(hs.size) != starts[group]) & (anchors[group] == _UNSEEN))
        for g in np.flatnonzero(hard):
            lo, hi = starts[g], starts[g + 1] if g + 1 < starts.size else hs.size
            anchor = int(anchors[g])
            latest = anchor
            for i in range(lo, hi):
                t = int(ts[i])
                duplicate[i] = anchor != _UNSEEN and abs(t - anchor) < window
                if not duplicate[i]:
                    anchor, latest = t, max(latest, t)
            kept_time[g] = latest
        changed = np.flatnonzero(kept_time != anchors)
        changed = changed[np.argsort(kept_time[changed], kind="stable")]  # insertion order = time order
        for h, t in zip(hs[starts[changed]].tolist(), kept_time[changed].tolist()):
            times[h] = t
            times.move_to_end(h)
        return duplicate

    def _expire(self, state: SeenKeys, newest: int) -> int:
        """Move the clock to `newest`; forget keys kept more than a window before it, then the oldest past
        `max_keys`. Returns how many were evicted for `max_keys`."""
        times = state.times
        state.clock = max(state.clock, newest)
        horizon = state.clock - self._window
        while times:
            oldest = next(iter(times))
            if times[oldest] >= horizon:
                break
            del times[oldest]
        evicted = 0
        while len(times) > self.config.max_keys:
            times.popitem(last=False)
            evicted += 1
        return evicted
