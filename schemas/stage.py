"""The stage protocol: what a stage is given, what it returns, and how failed records leave it."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.compute as pc

from loglake.schemas.config import OnError
from loglake.schemas.records import ERROR_COLUMN, ERROR_NODE_COLUMN, concat_batches

__all__ = ["BUSY_COUNTER", "FlushingStage", "PortSelectingStage", "end_marker", "ended_partition", "partition_of", "tag_partition", "NodeCounters", "NodeContext", "StageOutput", "Stage", "split_failures", "with_error_columns"]


BUSY_COUNTER = "busy_us"
"""Counter of the microseconds a node spent working (reading, processing or writing), for the summary."""


class NodeCounters:
    """Thread-safe named counters for one node (records in/out, files written, …), read by the run summary."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.observe: Callable[[float], None] | None = None
        """Called with the seconds of every timed block (the engine's batch-latency histogram), if set."""

    def add(self, name: str, amount: int = 1) -> None:
        """Add `amount` to counter `name`."""
        with self._lock:
            self._counts[name] += amount

    @contextmanager
    def timing(self, name: str = BUSY_COUNTER) -> Iterator[None]:
        """Add the wall time spent inside the block to counter `name`, in microseconds."""
        started = time.perf_counter_ns()
        try:
            yield
        finally:
            elapsed = time.perf_counter_ns() - started
            self.add(name, elapsed // 1000)
            if self.observe is not None:
                self.observe(elapsed / 1e9)

    def snapshot(self) -> dict[str, int]:
        """A copy of all counters."""
        with self._lock:
            return dict(self._counts)

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]


@dataclass
class NodeContext:
    """What the engine gives a node when it builds it.

    `base_dir` is the pipeline file's folder: relative paths in the config resolve against it.
    Stage `process` may be called from several worker threads at once; keep per-call state local.
    """

    node: str
    base_dir: Path = field(default_factory=Path.cwd)
    counters: NodeCounters = field(default_factory=NodeCounters)
    follow: bool | None = None
    """For sources: the run's `--follow` override (None: use the source's own setting)."""
    lake_dir: Path | None = None
    """The pipeline's lake folder (top-level `lake:`); default `<base_dir>/lake`."""

    @property
    def lake(self) -> Path:
        """The lake folder datasets are written under."""
        return self.lake_dir if self.lake_dir is not None else self.base_dir / "lake"

    def resolve(self, path: str | Path) -> Path:
        """A config path made absolute against the pipeline file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate


@dataclass
class StageOutput:
    """A stage's result for one batch: the main output and any named extra outputs (`dropped`, …)."""

    main: pa.RecordBatch
    extra: dict[str, pa.RecordBatch] = field(default_factory=dict)
    discarded: int = 0
    """Records dropped on purpose because `on_error: discard` (counted, never silent)."""


@runtime_checkable
class Stage(Protocol):
    """A batch transformer. Built once per pipeline run from its config and a `NodeContext`."""

    outputs: ClassVar[tuple[str, ...]]
    """Names of the extra outputs besides the main one (exposed as `node.<name>`)."""

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """Transform one batch; never raise for a bad record (route it with `split_failures`)."""
        ...


@runtime_checkable
class FlushingStage(Stage, Protocol):
    """A stage that holds records back between batches (multiline joins, …) and must let them go.

    The engine calls `flush` on every idle tick (`ended` is None: release what has waited too long) and
    when a source partition ends or the run is stopping (`ended` names the partition: release what
    belongs to it, or everything when the stage cannot tell).
    """

    def flush(self, ended: str | None) -> StageOutput | None:
        """Records ready to go on now, or None."""
        ...


@runtime_checkable
class PortSelectingStage(Stage, Protocol):
    """A stage that can leave out the extra outputs no node reads (a route's unread routes, …).

    The engine calls `read_ports` once, before the first batch, with the extra outputs that some node
    consumes; a stage it never calls this way (as in `loglake test`) builds every output.
    """

    def read_ports(self, ports: frozenset[str]) -> None:
        """Only `ports` (and `dropped`, always) need to be built from now on."""
        ...


_END = b"loglake.end_of_partition"


def end_marker(partition: str) -> pa.RecordBatch:
    """The empty batch the engine sends downstream when a source partition has no more records."""
    return pa.RecordBatch.from_pydict({}).replace_schema_metadata({_END: partition.encode()})


def ended_partition(batch: pa.RecordBatch) -> str | None:
    """The partition an end marker announces; None for any other batch (an idle tick, records)."""
    metadata = batch.schema.metadata
    return metadata[_END].decode() if metadata and _END in metadata else None


_PARTITION = b"loglake.partition"


def tag_partition(batch: pa.RecordBatch, partition: str) -> pa.RecordBatch:
    """`batch` labelled with the source partition its records came from (zero-copy; schema metadata)."""
    metadata = dict(batch.schema.metadata or {})
    metadata[_PARTITION] = partition.encode()
    return batch.replace_schema_metadata(metadata)


def partition_of(batch: pa.RecordBatch) -> str | None:
    """The source partition a batch was tagged with by the engine, or None (untagged, e.g. flushed output)."""
    metadata = batch.schema.metadata
    return metadata[_PARTITION].decode() if metadata and _PARTITION in metadata else None


def with_error_columns(batch: pa.RecordBatch, errors: pa.Array, node: str) -> pa.RecordBatch:
    """`batch` with `_error` = errors and `_error_node` = node where an error is set (replacing old ones)."""
    node_column = pc.if_else(pc.is_valid(errors), pa.scalar(node), pa.scalar(None, pa.string()))
    for name, column in ((ERROR_COLUMN, errors), (ERROR_NODE_COLUMN, node_column)):
        index = batch.schema.get_field_index(name)
        batch = batch.append_column(name, column) if index < 0 else batch.set_column(index, name, column)
    return batch


def split_failures(
    good: pa.RecordBatch, failed: pa.RecordBatch, errors: list[str], node: str, on_error: OnError
) -> StageOutput:
    """Apply `on_error` to the records a stage could not process.

    `good` holds the processed records; `failed` holds the original failed records and `errors` one
    message per failed record. `route` sends them to `dropped`, `keep` appends them to the main output with
    the error columns set (`good` gets empty error columns so both share a schema; a failed record's column
    whose type the stage changed becomes null of the new type), `discard` counts them.
    """
    if failed.num_rows == 0:
        return StageOutput(main=good)
    marked = with_error_columns(failed, pa.array(errors, pa.string()), node)
    if on_error is OnError.route:
        return StageOutput(main=good, extra={"dropped": marked})
    if on_error is OnError.discard:
        return StageOutput(main=good, discarded=failed.num_rows)
    clean = with_error_columns(good, pa.nulls(good.num_rows, pa.string()), node)
    marked = _retyped_as_null(marked, clean.schema)
    return StageOutput(main=concat_batches([clean, marked]))


def _retyped_as_null(failed: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Columns of `failed` whose type differs from the same column in `schema` become nulls of that type."""
    for index, name in enumerate(failed.schema.names):
        target = schema.get_field_index(name)
        if target >= 0 and schema.field(target).type != failed.schema.field(index).type:
            field = schema.field(target)
            failed = failed.set_column(index, field, pa.nulls(failed.num_rows, field.type))
    return failed
