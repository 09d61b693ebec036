"""The alert state machine: per group, inactive → pending → firing → resolved (inactive again), in event time.

Time is the rows' own: a row covers `[window_start, window_end)`. The condition has held for
`window_end` of the latest true row minus `window_start` of the first true row of an unbroken streak.
Only a row where the condition is false breaks a streak; a group without rows for a while (no traffic)
keeps its state. Nothing here reads the clock, so a replay reproduces a live run's transitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal

__all__ = ["GroupKey", "Phase", "Transition", "AlertRules"]

GroupKey = tuple[Any, ...]
"""The values of the `group_by` columns, in order (`()` without grouping)."""


class Phase(Enum):
    """Where one group's alert stands."""

    inactive = "inactive"
    pending = "pending"
    firing = "firing"


@dataclass(frozen=True)
class Transition:
    """A change worth a notification: the group started `firing`, or it `resolved`.

    `since` is the event time the condition started holding (both for `firing` and `resolved`).
    """

    status: Literal["firing", "resolved"]
    since: datetime


@dataclass
class _Group:
    phase: Phase = Phase.inactive
    since: datetime | None = None
    """`window_start` of the first true row of the current streak."""
    last_end: datetime | None = None
    """The latest `window_end` seen: an earlier row arrives late and is ignored."""
    resolved_at: datetime | None = None
    """`window_end` of the row that resolved the group last (cooldown starts there)."""


class AlertRules:
    """Alert state for the groups one writer sees.

    Memory holds only groups that are pending, firing or cooling down after resolving: `prune` drops
    the rest once per batch.
    """

    def __init__(self, hold: timedelta, cooldown: timedelta) -> None:
        self.hold = hold
        self.cooldown = cooldown
        self.late_rows = 0
        """Rows ignored because their window ended before one already seen for the same group."""
        self._groups: dict[GroupKey, _Group] = {}
        self._latest: datetime | None = None

    def __len__(self) -> int:
        """Groups held in memory."""
        return len(self._groups)

    def observe(self, key: GroupKey, holds: bool, start: datetime, end: datetime) -> Transition | None:
        """Apply one row of group `key` (condition value, window bounds); the notification it causes, if any."""
        group = self._groups.setdefault(key, _Group())
        if group.last_end is not None and end < group.last_end:
            self.late_rows += 1
            return None
        group.last_end = end
        self._latest = end if self._latest is None else max(self._latest, end)
        if not holds:
            return self._stop(key, group, end)
        if group.phase is Phase.firing:
            return None
        if group.phase is Phase.inactive or group.since is None:
            group.phase, group.since = Phase.pending, start
        held_long_enough = end - group.since >= self.hold
        cooled_down = group.resolved_at is None or end - group.resolved_at >= self.cooldown
        if held_long_enough and cooled_down:
            group.phase = Phase.firing
            return Transition("firing", group.since)
        return None

    def _stop(self, key: GroupKey, group: _Group, end: datetime) -> Transition | None:
        """A false row: a firing group resolves, a pending one starts over."""
        since, was_firing = group.since, group.phase is Phase.firing
        group.phase, group.since = Phase.inactive, None
        if was_firing and since is not None:
            group.resolved_at = end
            return Transition("resolved", since)
        if not self._cooling(group, end):
            del self._groups[key]
        return None

    def _cooling(self, group: _Group, now: datetime) -> bool:
        return group.resolved_at is not None and now - group.resolved_at < self.cooldown

    def prune(self) -> int:
        """Forget inactive groups whose cooldown has passed by the latest event time seen; how many."""
        if self._latest is None:
            return 0
        latest = self._latest
        done = [key for key, g in self._groups.items() if g.phase is Phase.inactive and not self._cooling(g, latest)]
        for key in done:
            del self._groups[key]
        return len(done)
