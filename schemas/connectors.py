"""Source and sink protocols. Engine-agnostic: the engine adapts them to its own inputs and outputs.

A source is split into named partitions (files, Kafka topic partitions) that the engine spreads over
workers; each partition reads batches and reports a JSON-able position to resume from. A sink opens one
writer per worker, or, if it can take part in crash recovery, one writer per sink partition
(`PartitionedSink`): such a writer publishes its output when the engine snapshots it and, when resumed from
a snapshot, removes whatever it wrote after that snapshot, so a restart never doubles a record.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

__all__ = ["EndOfInput", "SourcePartition", "Source", "SinkWriter", "Sink", "SnapshottingWriter", "PartitionedSink"]


class EndOfInput(Exception):
    """Raised by `SourcePartition.read` when bounded input is exhausted."""


@runtime_checkable
class SourcePartition(Protocol):
    """One independently readable slice of a source (a file, a topic partition)."""

    def read(self) -> pa.RecordBatch | None:
        """The next batch, or None when nothing is ready yet; never blocks for long. Raises `EndOfInput` at the end."""
        ...

    def position(self) -> Any:
        """A JSON-able position that resumes reading just after the last record returned."""
        ...

    def close(self) -> None:
        """Release files and connections."""
        ...


@runtime_checkable
class Source(Protocol):
    """A configured source; lists its partitions and opens them."""

    def partitions(self) -> list[str]:
        """Stable partition names (the same on every worker and across restarts)."""
        ...

    def open(self, partition: str, resume: Any | None) -> SourcePartition:
        """Open a partition, resuming from a position previously returned by `SourcePartition.position`.

        A source whose partitions can change between runs (files found after start) may also define
        `remap_positions(saved: dict[str, Any]) -> dict[str, Any]`, which re-keys a checkpoint's positions
        by this run's partitions before any is opened.
        """
        ...


@runtime_checkable
class SinkWriter(Protocol):
    """A sink's writer for one worker."""

    def write(self, batch: pa.RecordBatch) -> None:
        """Write one batch (an empty batch is a tick: a chance to roll files by age)."""
        ...

    def close(self) -> None:
        """Flush and commit everything written."""
        ...

    def abort(self) -> None:
        """Discard uncommitted output after a failure; leaves nothing half-written visible."""
        ...


@runtime_checkable
class Sink(Protocol):
    """A configured sink; opens one writer per worker."""

    def open(self, worker_index: int, worker_count: int) -> SinkWriter:
        """A writer for one worker; writers of different workers never write the same file."""
        ...


@runtime_checkable
class SnapshottingWriter(SinkWriter, Protocol):
    """A writer whose output can be rolled back to a snapshot (exactly-once with the engine's recovery)."""

    def snapshot(self) -> Any:
        """Publish everything written so far and return a picklable state that identifies it."""
        ...


@runtime_checkable
class PartitionedSink(Protocol):
    """A sink with a fixed set of writers named by the engine (one per sink partition), each resumable."""

    def open_partition(
        self, partition: str, resume: Any | None, roll_back_unsnapshotted: bool = False, keeps_snapshots: bool = False
    ) -> SnapshottingWriter:
        """The writer of one sink partition. With `resume` (a state its `snapshot` returned), first remove
        every output of this partition written after that snapshot. Without it, start fresh; with
        `roll_back_unsnapshotted` too (the engine's snapshot store existed, so an earlier run of this partition
        crashed before storing any snapshot), first remove what that run wrote. `keeps_snapshots` says whether
        the run stores snapshots at all (without, nothing it writes is ever rolled back)."""
        ...
