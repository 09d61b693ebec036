"""The `dedupe` stage: drop records whose key was already seen within a time window.

State is per stage instance: worker threads of one process share it under a lock. Across processes (a
Bytewax cluster) each process only knows the keys it saw, so the engine must route records by the dedupe
key (Bytewax keyed state) before this stage for duplicates to be caught everywhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import ClassVar, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from loglake.schemas.config import StageConfig
from loglake.schemas.records import TIMESTAMP_TYPE, conform_core_columns
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput
from loglake.schemas.units import Duration

__all__ = ["DedupeConfig", "DedupeStage", "DUPLICATES_COUNTER", "EVICTED_COUNTER"]

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
    """Keys remembered at most; past it the oldest are forgotten first (counted as `dedupe_evicted`)."""

    @field_validator("key")
    @classmethod
    def _check_key(cls, value: list[str]) -> list[str]:
        if any(not name for name in value) or len(set(value)) != len(value):
            raise ValueError("key fields must be non-empty and listed once each")
        return value


class _Hasher:
    """Hashes key columns into uint64 with DuckDB's `hash` (stable within a process); pools connections per thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[duckdb.DuckDBPyConnection] = []

    def hash(self, keys: pa.Table) -> np.ndarray:
        with self._lock:
            con = self._idle.pop() if self._idle else duckdb.connect(config={"threads": 1})
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


@register_stage(DedupeConfig)
class DedupeStage:
    """Sorts each batch by (key hash, time), decides first occurrences with numpy, and keeps per-key state.

    State maps a 64-bit key hash to the time of the key's last kept record, in an insertion-ordered map:
    expired keys (older than the window behind the newest time seen) are swept from its front each batch,
    and the oldest keys are evicted when `max_keys` is exceeded. A 64-bit hash makes a false duplicate
    among a million keys about a one-in-ten-million chance.
    """

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: DedupeConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        self._window = int(config.window.total_seconds() * 1_000_000)
        self._state: OrderedDict[int, int] = OrderedDict()
        self._clock = -(2**62)
        self._lock = threading.Lock()
        self._hasher = _Hasher()

    def _times(self, batch: pa.RecordBatch) -> tuple[np.ndarray, int | None]:
        """Per record, µs since the epoch; and the newest event time in the batch (None if there is none)."""
        now = time.time_ns() // 1000
        if self.config.time == "processing" or "timestamp" not in batch.schema.names:
            return np.full(batch.num_rows, now, dtype=np.int64), None
        column = conform_core_columns(batch.select(["timestamp"])).column(0)
        micros = pc.cast(pc.cast(column, TIMESTAMP_TYPE), pa.int64())
        newest = pc.max(micros).as_py()
        return pc.fill_null(micros, now).to_numpy(zero_copy_only=False), newest

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch without records whose key was kept within the window; order is preserved."""
        n = batch.num_rows
        if n == 0 or any(name not in batch.schema.names for name in self.config.key):
            return StageOutput(main=batch)
        keys = pa.Table.from_batches([batch.select(self.config.key)])
        valid = pc.and_(*[pc.is_valid(c) for c in keys.columns]) if len(keys.columns) > 1 else pc.is_valid(keys.column(0))
        rows = np.flatnonzero(valid.to_numpy(zero_copy_only=False) if isinstance(valid, pa.Array) else valid.combine_chunks().to_numpy(zero_copy_only=False))
        if rows.size == 0:
            return StageOutput(main=batch)
        hashes = self._hasher.hash(keys.take(pa.array(rows))).astype(np.uint64)
        times, newest = self._times(batch)
        times = times[rows]
        order = np.lexsort((times, hashes))  # stable: equal (key, time) keep record order
        hs, ts, rs = hashes[order], times[order], rows[order]
        with self._lock:
            duplicate, evicted = self._decide(hs, ts, newest if newest is not None else int(ts.max()))
        dropped = int(duplicate.sum())
        if evicted:
            self.ctx.counters.add(EVICTED_COUNTER, evicted)
        if not dropped:
            return StageOutput(main=batch)
        self.ctx.counters.add(DUPLICATES_COUNTER, dropped)
        log.debug("%s: %d of %d records were duplicates; %d keys held", self.ctx.node, dropped, n, len(self._state))
        keep = np.ones(n, dtype=bool)
        keep[rs[duplicate]] = False
        return StageOutput(main=batch.filter(pa.array(keep)))

    def _decide(self, hs: np.ndarray, ts: np.ndarray, newest: int) -> tuple[np.ndarray, int]:
        """Duplicate flags for records sorted by (hash, time); updates the state. Call with the lock held."""
        window, state = self._window, self._state
        starts = np.flatnonzero(np.r_[True, hs[1:] != hs[:-1]])
        group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, hs.size]))
        distinct = hs[starts].tolist()
        unseen = -(2**62)
        anchors = np.array([state.get(h, unseen) for h in distinct], dtype=np.int64)
        # Common case: the group's records are all within the window of the stored anchor, or (no anchor)
        # of the group's first record; anything else is settled one group at a time below.
        row_anchor = anchors[group]
        near_anchor = np.abs(ts - row_anchor) < window
        first = np.where(anchors == unseen, ts[starts], 0)[group]
        duplicate = np.where(anchors[group] == unseen, np.abs(ts - first) < window, near_anchor)
        duplicate[starts[anchors == unseen]] = False
        kept_time = np.where(anchors == unseen, ts[starts], anchors)
        hard = np.zeros(starts.size, dtype=bool)
        np.logical_or.at(hard, group, ~duplicate)
        hard &= anchors != unseen  # an anchored group with a record to keep
        np.logical_or.at(hard, group, ~duplicate & (np.arange(hs.size) != starts[group]) & (anchors[group] == unseen))
        for g in np.flatnonzero(hard):
            lo, hi = starts[g], starts[g + 1] if g + 1 < starts.size else hs.size
            anchor = int(anchors[g])
            latest = anchor
            for i in range(lo, hi):
                t = int(ts[i])
                duplicate[i] = anchor != unseen and abs(t - anchor) < window
                if not duplicate[i]:
                    anchor, latest = t, max(latest, t)
            kept_time[g] = latest
        changed = np.flatnonzero(kept_time != anchors)
        changed = changed[np.argsort(kept_time[changed], kind="stable")]  # insertion order = time order
        for h, t in zip(hs[starts[changed]].tolist(), kept_time[changed].tolist()):
            state[h] = t
            state.move_to_end(h)
        self._clock = max(self._clock, newest)
        horizon = self._clock - window
        while state:
            oldest = next(iter(state))
            if state[oldest] >= horizon:
                break
            del state[oldest]
        evicted = 0
        while len(state) > self.config.max_keys:
            state.popitem(last=False)
            evicted += 1
        return duplicate, evicted
