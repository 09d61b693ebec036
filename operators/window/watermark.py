"""The event-time watermark: the minimum progress over the source partitions that feed one window state.

A partition's progress is the newest event time it has sent that may advance the watermark (see
`batch_progress` for the `max_future` bound). A partition that sent nothing for `idle_timeout` (wall clock)
and a partition that has ended stop holding the watermark back. The watermark never goes back. All times
are µs since the Unix epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["NO_WATERMARK", "ANONYMOUS_PARTITION", "PartitionClock", "Watermark", "batch_progress"]

NO_WATERMARK = -(2**63)
"""The watermark before anything is known: no window is closed and no record is late."""
ANONYMOUS_PARTITION = ""
"""The partition of batches the engine did not tag (tests, `loglake test`)."""


@dataclass
class PartitionClock:
    """What one source partition has told a window state."""

    progress: int | None = None
    """Newest event time that may advance the watermark; None until the partition sent one."""
    heard: int = 0
    """Wall-clock time of its last batch (or of when it was expected)."""
    ended: bool = False


@dataclass
class Watermark:
    """The partitions feeding one window state and the watermark they allow (picklable)."""

    partitions: dict[str, PartitionClock] = field(default_factory=dict)
    value: int = NO_WATERMARK

    def expect(self, partition: str, now: int) -> None:
        """Wait for `partition` even before its first batch (it holds the watermark back until it idles)."""
        self.partitions.setdefault(partition, PartitionClock(heard=now))

    def heard(self, partition: str, progress: int | None, now: int) -> None:
        """A batch from `partition` arrived at `now`, with this progress."""
        clock = self.partitions.setdefault(partition, PartitionClock())
        clock.heard = max(clock.heard, now)
        if progress is not None and (clock.progress is None or progress > clock.progress):
            clock.progress = progress

    def end(self, partition: str) -> None:
        """`partition` will send nothing more.

        An unknown partition's end also ends the anonymous partition: untagged records cannot be told apart
        by source, so the end of any source is the only end they get.
        """
        if partition not in self.partitions and ANONYMOUS_PARTITION in self.partitions:
            self.partitions[ANONYMOUS_PARTITION].ended = True
        self.partitions.setdefault(partition, PartitionClock()).ended = True

    @property
    def live(self) -> bool:
        """Whether some known partition has not ended (a state that heard of none is not live)."""
        return any(not clock.ended for clock in self.partitions.values())

    def advance(self, now: int, idle_timeout: int) -> int:
        """The watermark at wall-clock `now`: the minimum progress of the partitions neither ended nor idle.

        When every partition is ended or idle, nothing holds it back: it is the newest progress of any.
        A partition without progress yet holds it where it is.
        """
        active = [c for c in self.partitions.values() if not c.ended and now - c.heard < idle_timeout]
        if active:
            candidate = min(NO_WATERMARK if c.progress is None else c.progress for c in active)
        else:
            candidate = max((c.progress for c in self.partitions.values() if c.progress is not None), default=NO_WATERMARK)
        self.raise_to(candidate)
        return self.value

    def raise_to(self, time: int) -> None:
        """Move the watermark to `time` if that is later."""
        self.value = max(self.value, time)


def batch_progress(times: np.ndarray, valid: np.ndarray, now: int, max_future: int) -> int | None:
    """The newest event time among `times[valid]` not beyond `now + max_future`; None if there is none.

    Records further in the future are still aggregated; they just cannot drag the watermark ahead.
    """
    usable = times[valid & (times <= now + max_future)]
    return int(usable.max()) if usable.size else None
