"""The `window` stage's configuration model: the window kind, its clock, grouping and aggregates."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from loglake.schemas.config import ConfigPart, OnError, StageConfig, check_group_by
from loglake.schemas.units import Duration, positive_duration

__all__ = ["WindowConfig", "SlidingWindow", "SessionWindow", "MAX_WINDOWS_PER_RECORD", "RESERVED_COLUMNS"]

MAX_WINDOWS_PER_RECORD = 1000
"""Most sliding windows one record may belong to (`size / every`): each record is counted in every one of them."""

RESERVED_COLUMNS = ("window_start", "window_end", "timestamp")
"""Columns every window row has; group fields and aggregates may not take these names."""


class SlidingWindow(ConfigPart):
    """Hopping windows of `size`, one starting every `every`, aligned to the Unix epoch."""

    size: Duration
    """Length of each window."""
    every: Duration
    """Time between window starts (at most `size`)."""

    @model_validator(mode="after")
    def _every_fits_size(self) -> SlidingWindow:
        positive_duration(self.size, "size")
        positive_duration(self.every, "every")
        if self.every > self.size:
            raise ValueError(f"every ({_shown(self.every)}) must not be longer than size ({_shown(self.size)}); records between windows would be lost")
        if self.size / self.every > MAX_WINDOWS_PER_RECORD:
            raise ValueError(f"size / every is {self.size / self.every:g}; each record would be counted in that many windows (at most {MAX_WINDOWS_PER_RECORD})")
        return self


class SessionWindow(ConfigPart):
    """Per-group sessions: records less than `gap` apart belong to the same window."""

    gap: Duration
    """A session ends when no record of its group came for this long; its window ends at its last record + gap."""

    @field_validator("gap")
    @classmethod
    def _gap_ispositive_duration(cls, value: timedelta) -> timedelta:
        return positive_duration(value, "gap")


class WindowConfig(StageConfig):
    """Aggregate records per time window and group; one row per window and group when the window closes.

    Example:
        per_minute: {type: window, tumbling: 1m, group_by: [response], aggregate: {requests: "count()", p95_bytes: "quantile(bytes, 0.95)"}}
    """

    type: Literal["window"]
    tumbling: Duration | None = None
    """Fixed, non-overlapping windows of this length, aligned to the Unix epoch (`1m`: every whole minute)."""
    sliding: SlidingWindow | None = None
    """Overlapping windows: `{size: 10m, every: 1m}`; a record is counted in each window that holds it."""
    session: SessionWindow | None = None
    """Activity sessions per group: `{gap: 30m}`."""
    time: Literal["event", "processing"] = "event"
    """Clock the windows follow: `event` (the records' `time_field`) or `processing` (the wall clock when a record arrives)."""
    time_field: str = "timestamp"
    """Timestamp column holding the event time; a record without one goes to `<node>.dropped`."""
    group_by: list[str] = Field(default_factory=list)
    """Fields that make a group (dotted paths reach into structs: `ua.browser`); one row per window and group."""
    aggregate: dict[str, str] = Field(min_length=1)
    """Output column → aggregate: `count()`, `count(x)`, `sum(x)`, `avg(x)`, `min(x)`, `max(x)`, `first(x)`, `last(x)`, `quantile(x, q)`, `count_distinct(x)`, `top_k(x, k)`."""
    allowed_lateness: Duration = Field(default="0s", validate_default=True)
    """How long after its end (in watermark time) a window still accepts records; later ones go to `<node>.late`."""
    idle_timeout: Duration = Field(default="30s", validate_default=True)
    """A source partition that sent nothing for this long (wall clock) no longer holds the watermark back."""
    max_future: Duration = Field(default="1h", validate_default=True)
    """Event times beyond the wall clock plus this never advance the watermark (one bad clock cannot close every window); the record is still aggregated."""

    @field_validator("tumbling")
    @classmethod
    def _tumbling_ispositive_duration(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else positive_duration(value, "tumbling")

    @field_validator("idle_timeout")
    @classmethod
    def _idle_timeout_ispositive_duration(cls, value: timedelta) -> timedelta:
        return positive_duration(value, "idle_timeout")

    @field_validator("allowed_lateness", "max_future")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value

    @field_validator("group_by")
    @classmethod
    def _group_fields(cls, value: list[str]) -> list[str]:
        clash = "group_by field {names} clashes with the window rows' own columns: " + ", ".join(RESERVED_COLUMNS)
        return check_group_by(value, RESERVED_COLUMNS, clash)

    @field_validator("on_error")
    @classmethod
    def _no_keep(cls, value: OnError) -> OnError:
        if value is OnError.keep:
            raise ValueError("'keep' would mix raw records into window rows; use 'route' or 'discard'")
        return value

    @model_validator(mode="after")
    def _one_window_kind(self) -> WindowConfig:
        given = [name for name in ("tumbling", "sliding", "session") if getattr(self, name) is not None]
        if len(given) != 1:
            got = f" (got {' and '.join(given)})" if given else ""
            raise ValueError(f"give exactly one window kind: 'tumbling', 'sliding' or 'session'{got}")
        return self

    @property
    def window_kind(self) -> Literal["tumbling", "sliding", "session"]:
        """Which window kind is configured."""
        return "tumbling" if self.tumbling is not None else "sliding" if self.sliding is not None else "session"


def _shown(value: timedelta) -> str:
    return f"{value.total_seconds():g}s"
