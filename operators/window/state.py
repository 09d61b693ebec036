"""Window state and the window kinds: which windows a record belongs to, when it is late, when a window closes.

`WindowState` is plain data (picklable, so the engine can snapshot it); `FixedWindows` (tumbling and sliding)
and `SessionWindows` hold the configuration and do the work on a state they are handed. All times are µs
since the Unix epoch.

A batch is pre-aggregated per (window, group) in Arrow (`preaggregate`); folding those partials into the
state is a Python loop over the batch's (window, group) pairs, not over its records, and is not vectorised:
partials are Python values (counts, sums, quantile sketches, distinct-count sketches) held per group across
batches. A group_by with many values per batch pays for it: the nginx benchmark's hourly requests per
client meets ~1,700 clients a 10,000-record batch. Windows of only counts and sums add their partials in
place instead (`Plan.sums`): that count's pre-aggregation and fold take 0.10 s per 1M records against 0.28
the general way, `count(), sum(bytes)` 0.16 against 0.39; with every client distinct, 1.5 against 1.8 and
1.4 against 2.3 (benchmarks/window_fold.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import pyarrow as pa

from loglake.operators.window.aggregates import Plan, Prepared, preaggregate
from loglake.operators.window.watermark import Watermark

__all__ = ["GroupKey", "Session", "WindowState", "Closed", "Windows", "FixedWindows", "SessionWindows"]

GroupKey = tuple[Any, ...]
"""The group_by values of a group, as Python values."""

_NEVER = 2**63 - 1


@dataclass
class Session:
    """An open session of one group: its first and last record times and its partials."""

    start: int
    last: int
    partials: list[Any]


@dataclass
class WindowState:
    """What one window state holds between batches: the watermark, open windows, and the fields' first types."""

    watermark: Watermark = field(default_factory=Watermark)
    windows: dict[int, dict[GroupKey, list[Any]]] = field(default_factory=dict)
    """Tumbling and sliding windows: window start → group → partials."""
    sessions: dict[GroupKey, list[Session]] = field(default_factory=dict)
    """Session windows: group → its open sessions."""
    session_due: int = _NEVER
    """No session closes before the watermark reaches this."""
    types: dict[str, pa.DataType] = field(default_factory=dict)
    """The Arrow type each group or input field first had, which its output column keeps."""


class Closed(NamedTuple):
    """A window ready to be emitted."""

    start: int
    end: int
    group: GroupKey
    partials: list[Any]


class Windows(Protocol):
    """One window kind working on a `WindowState`."""

    def add(self, state: WindowState, records: Prepared, keys: list[GroupKey], watermark: int) -> np.ndarray:
        """Fold records into their windows; returns which records are late (their windows are not updated)."""
        ...

    def close(self, state: WindowState, watermark: int) -> list[Closed]:
        """Remove and return the windows the watermark has passed (end + allowed lateness)."""
        ...

    def close_all(self, state: WindowState) -> list[Closed]:
        """Remove and return every open window; the watermark moves past them, so records for them are late."""
        ...


class FixedWindows:
    """Tumbling (`every` = `size`) or sliding windows [start, start + size), starts on the epoch grid of `every`."""

    def __init__(self, plan: Plan, size: int, every: int, lateness: int) -> None:
        self.plan, self.size, self.every, self.lateness = plan, size, every, lateness
        self.copies = -(-size // every)
        """Most windows one record belongs to."""

    def add(self, state: WindowState, records: Prepared, keys: list[GroupKey], watermark: int) -> np.ndarray:
        """A record is late when a window it belongs to has closed; it still counts in its open windows."""
        times = records.times
        rows = np.arange(times.size)
        starts = times // self.every * self.every
        if self.copies > 1:
            rows = np.repeat(rows, self.copies)
            starts = starts[rows] - np.tile(np.arange(self.copies, dtype=np.int64) * self.every, times.size)
            inside = starts > times[rows] - self.size
            rows, starts = rows[inside], starts[inside]
        late = starts + self.size + self.lateness <= watermark
        late_records = np.zeros(times.size, dtype=bool)
        late_records[rows[late]] = True
        if self.copies > 1 or late.any():
            records, starts = records.take(rows[~late]), starts[~late]
        if starts.size:
            batch = preaggregate(self.plan, records, starts)
            sums = self.plan.sums(batch)
            if sums is not None:
                _add_sums(state.windows, keys, batch.ids, batch.windows, sums, self.plan.empty())
                return late_records
            fold, empty, windows = self.plan.fold, self.plan.empty, state.windows
            for group_id, start, values in zip(batch.ids, batch.windows, self.plan.rows(batch)):
                window = windows.get(start)
                if window is None:
                    window = windows[start] = {}
                group = keys[group_id]
                partials = window.get(group)
                window[group] = fold(empty() if partials is None else partials, values)
        return late_records

    def close(self, state: WindowState, watermark: int) -> list[Closed]:
        closed: list[Closed] = []
        if not state.windows or min(state.windows) + self.size + self.lateness > watermark:
            return closed
        for start in sorted(state.windows):
            end = start + self.size
            if end + self.lateness > watermark:
                break
            closed.extend(Closed(start, end, group, partials) for group, partials in state.windows.pop(start).items())
        return closed

    def close_all(self, state: WindowState) -> list[Closed]:
        if state.windows:
            state.watermark.raise_to(max(state.windows) + self.size + self.lateness)
        return self.close(state, state.watermark.value)


def _add_sums(windows: dict[int, dict[GroupKey, list[Any]]], keys: list[GroupKey], ids: list[int], starts: list[int], sums: list[list[Any]], empty: list[Any]) -> None:
    """Fold pre-aggregated rows of counts and sums (`Plan.sums`) into `windows`, adding in place; None adds nothing."""
    for group_id, start, row in zip(ids, starts, zip(*sums)):
        window = windows.get(start)
        if window is None:
            window = windows[start] = {}
        group = keys[group_id]
        partials = window.get(group)
        if partials is None:
            window[group] = [nothing if value is None else value for nothing, value in zip(empty, row)]
            continue
        for index, value in enumerate(row):
            if value is not None:
                before = partials[index]
                partials[index] = value if before is None else before + value


class SessionWindows:
    """Per-group sessions: records less than `gap` apart share a window [first record, last record + gap)."""

    def __init__(self, plan: Plan, gap: int, lateness: int) -> None:
        self.plan, self.gap, self.lateness = plan, gap, lateness

    def add(self, state: WindowState, records: Prepared, keys: list[GroupKey], watermark: int) -> np.ndarray:
        """The batch is cut into sessions per group, vectorised; each joins the open sessions it reaches.

        A batch session that reaches no open session and whose end (+ allowed lateness) the watermark has
        passed is late, with all its records.
        """
        times, ids = records.times, records.ids
        order = np.lexsort((times, ids))
        group_sorted, time_sorted = ids[order], times[order]
        new = np.ones(times.size, dtype=bool)
        new[1:] = (group_sorted[1:] != group_sorted[:-1]) | (time_sorted[1:] - time_sorted[:-1] >= self.gap)
        session_of = np.empty(times.size, dtype=np.int64)
        session_of[order] = np.cumsum(new) - 1
        firsts = np.flatnonzero(new)
        starts = time_sorted[firsts].tolist()
        lasts = time_sorted[np.append(firsts[1:] - 1, times.size - 1)].tolist()
        batch = preaggregate(self.plan, records, session_of)
        late_sessions = []
        for group_id, session, values in zip(batch.ids, batch.windows, self.plan.rows(batch)):
            group = keys[group_id]
            start, last = starts[session], lasts[session]
            open_sessions = state.sessions.get(group, [])
            touching = [s for s in open_sessions if start < s.last + self.gap and s.start < last + self.gap]
            if not touching and last + self.gap + self.lateness <= watermark:
                late_sessions.append(session)
                continue
            merged = Session(start, last, self.plan.fold(self.plan.empty(), values))
            for older in touching:
                merged = Session(min(older.start, merged.start), max(older.last, merged.last), self.plan.merge(older.partials, merged.partials))
            state.sessions[group] = [s for s in open_sessions if all(s is not t for t in touching)] + [merged]
            state.session_due = min(state.session_due, merged.last + self.gap + self.lateness)
        return np.isin(session_of, np.array(late_sessions, dtype=np.int64))

    def close(self, state: WindowState, watermark: int) -> list[Closed]:
        if watermark < state.session_due:
            return []
        closed: list[Closed] = []
        due = _NEVER
        for group in list(state.sessions):
            still_open = []
            for session in state.sessions[group]:
                end = session.last + self.gap
                if end + self.lateness <= watermark:
                    closed.append(Closed(session.start, end, group, session.partials))
                else:
                    still_open.append(session)
                    due = min(due, end + self.lateness)
            if still_open:
                state.sessions[group] = still_open
            else:
                del state.sessions[group]
        state.session_due = due
        return closed

    def close_all(self, state: WindowState) -> list[Closed]:
        lasts = [session.last for sessions in state.sessions.values() for session in sessions]
        if lasts:
            state.watermark.raise_to(max(lasts) + self.gap + self.lateness)
        return self.close(state, state.watermark.value)
