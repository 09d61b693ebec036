"""The only Bytewax importer: a compiled pipeline becomes a Bytewax `Dataflow` whose items are Arrow batches."""

from __future__ import annotations

import threading
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
from bytewax import operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, FixedPartitionedSink, StatefulSinkPartition, StatelessSinkPartition

from loglake.pipelines.checkpoint import PositionTracker
from loglake.pipelines.compile import CompiledPipeline, Pairs, flush_stage, output_pairs, run_stage, tagged
from loglake.pipelines.keyed import is_keyed_stage, keyed_stage_step
from loglake.pipelines.spec import PortRef
from loglake.schemas.connectors import EndOfInput, PartitionedSink, Sink, SinkWriter, SnapshottingWriter, Source, SourcePartition
from loglake.schemas.stage import NodeContext, NodeCounters, PortSelectingStage, end_marker, partition_of, tag_partition

__all__ = ["RunControl", "build_dataflow"]

_IDLE_POLL = timedelta(milliseconds=50)
_TICK_EVERY = timedelta(seconds=1)
_EMPTY = pa.RecordBatch.from_pydict({})


class RunControl:
    """Shared by the runner and the adapters: stop requests, source positions and open sink writers."""

    def __init__(self, positions: PositionTracker, recovery: bool = False, resuming_store: bool = False) -> None:
        self.stop = threading.Event()
        self.positions = positions
        self.recovery = recovery
        """Whether snapshots are kept: sinks then commit with every snapshot (exactly-once after a crash)."""
        self.resuming_store = resuming_store
        """Whether the snapshot store existed before this run (so a sink partition without a snapshot crashed early)."""
        self._writers: list[SinkWriter] = []
        self._lock = threading.Lock()
        self.close_errors: list[BaseException] = []
        """Errors of closing writers, kept for the runner to raise: raised inside Bytewax's teardown after another
        failure, they would abort the whole process without a word."""

    def track_writer(self, writer: SinkWriter) -> None:
        with self._lock:
            self._writers.append(writer)

    def untrack_writer(self, writer: SinkWriter) -> None:
        with self._lock:
            if writer in self._writers:
                self._writers.remove(writer)

    def abort_writers(self) -> None:
        """After a failure: discard every writer's uncommitted files."""
        with self._lock:
            writers, self._writers = self._writers, []
        for writer in writers:
            writer.abort()


class _SourcePartitionAdapter(StatefulSourcePartition[pa.RecordBatch, Any]):
    def __init__(self, name: str, key: str, partition: SourcePartition, control: RunControl, counters: NodeCounters) -> None:
        self._name, self._key, self._partition, self._control = name, key, partition, control
        self._counters = counters
        self._awake: datetime | None = None
        self._last_emit = datetime.now(timezone.utc)
        self._ended = False

    def next_batch(self) -> list[pa.RecordBatch]:
        if self._ended:
            raise StopIteration
        if self._control.stop.is_set():
            return self._end()
        try:
            with self._counters.timing():
                batch = self._partition.read()
        except EndOfInput:
            return self._end()
        now = datetime.now(timezone.utc)
        if batch is None or batch.num_rows == 0:
            self._awake = now + _IDLE_POLL
            if now - self._last_emit >= _TICK_EVERY:
                self._last_emit = now
                return [_EMPTY]  # an idle tick: lets sinks roll files by age
            return []
        self._awake = None
        self._last_emit = now
        self._control.positions.record(self._name, self._key, self._partition.position())
        return [tag_partition(batch, self._key)]

    def _end(self) -> list[pa.RecordBatch]:
        """Announce the end downstream (stages holding records back release them), then stop."""
        self._ended = True
        return [end_marker(self._key)]

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> Any:
        return self._partition.position()

    def close(self) -> None:
        self._partition.close()


class _SourceAdapter(FixedPartitionedSource[pa.RecordBatch, Any]):
    def __init__(self, name: str, source: Source, control: RunControl, counters: NodeCounters) -> None:
        self._name, self._source, self._control, self._counters = name, source, control, counters

    def list_parts(self) -> list[str]:
        return self._source.partitions()

    def build_part(self, step_id: str, for_part: str, resume_state: Any | None) -> _SourcePartitionAdapter:
        resume = resume_state if resume_state is not None else self._control.positions.resume_for(self._name, for_part)
        partition = self._source.open(for_part, resume)
        return _SourcePartitionAdapter(self._name, for_part, partition, self._control, self._counters)


class _WriterAdapter:
    """Times a sink writer's work and tracks it for abort-on-failure."""

    def __init__(self, writer: SinkWriter, control: RunControl, counters: NodeCounters) -> None:
        self._writer, self._control, self._counters = writer, control, counters
        control.track_writer(writer)

    def write_batch(self, items: list[pa.RecordBatch]) -> None:
        with self._counters.timing():
            for batch in items:
                self._writer.write(batch)

    def close(self) -> None:
        try:
            with self._counters.timing():
                self._writer.close()
        except Exception as exc:  # noqa: BLE001 - kept for the runner (see RunControl.close_errors)
            self._control.close_errors.append(exc)
        finally:
            self._control.untrack_writer(self._writer)


class _SinkPartitionAdapter(_WriterAdapter, StatelessSinkPartition[pa.RecordBatch]):
    pass


class _SinkAdapter(DynamicSink[pa.RecordBatch]):
    def __init__(self, sink: Sink, control: RunControl, counters: NodeCounters) -> None:
        self._sink, self._control, self._counters = sink, control, counters

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _SinkPartitionAdapter:
        return _SinkPartitionAdapter(self._sink.open(worker_index, worker_count), self._control, self._counters)


class _SnapshottingPartitionAdapter(_WriterAdapter, StatefulSinkPartition[pa.RecordBatch, Any]):
    """Commits the writer's files at each snapshot, but only when the run keeps snapshots (crash recovery)."""

    def __init__(self, writer: SnapshottingWriter, control: RunControl, counters: NodeCounters) -> None:
        super().__init__(writer, control, counters)
        self._snapshotting = writer

    def snapshot(self) -> Any:
        if not self._control.recovery:
            return None
        with self._counters.timing():
            return self._snapshotting.snapshot()


class _LocalWriters:
    """Which writer partition of a sink each worker thread of this process built.

    Bytewax builds a writer on the worker that is its primary, on that worker's thread, and a stateless step
    runs on the worker holding the item; so a batch keyed to the writer built on the current thread is
    written by the worker that made it, never pickled to another process.
    """

    def __init__(self) -> None:
        self._by_thread: dict[int, str] = {}
        self._lock = threading.Lock()

    def built(self, part: str) -> None:
        """Note that the current thread built writer `part` (its first, when it builds several)."""
        with self._lock:
            self._by_thread.setdefault(threading.get_ident(), part)

    def here(self) -> str | None:
        """The writer built on the current thread, or None (none yet, or none on this worker)."""
        return self._by_thread.get(threading.get_ident())


class _PartitionedSinkAdapter(FixedPartitionedSink[pa.RecordBatch, Any]):
    """One writer per sink partition `0 … count-1`; items arrive keyed by the partition's number."""

    def __init__(self, sink: PartitionedSink, count: int, control: RunControl, counters: NodeCounters, local: _LocalWriters) -> None:
        self._sink, self._count, self._control, self._counters, self._local = sink, count, control, counters, local

    def list_parts(self) -> list[str]:
        return [str(index) for index in range(self._count)]

    def part_fn(self, item_key: str) -> int:
        return int(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: Any | None) -> _SnapshottingPartitionAdapter:
        writer = self._sink.open_partition(
            for_part, resume_state, roll_back_unsnapshotted=self._control.resuming_store, keeps_snapshots=self._control.recovery
        )
        self._local.built(for_part)
        return _SnapshottingPartitionAdapter(writer, self._control, self._counters)


def _keyed_for_sink_partitions(count: int, local: _LocalWriters) -> Any:
    """Key batches by sink partition: to the writer on the worker that made the batch; ticks reach all.

    Until this worker has built its writer (the first batches of a run may come sooner), a batch goes to
    the writer its source partition hashes to. Which writer holds a record does not matter for recovery:
    a resumed run rolls every writer back to the snapshot and re-reads everything after it.
    """

    def key(batch: pa.RecordBatch) -> list[tuple[str, pa.RecordBatch]]:
        if batch.num_rows == 0:
            return [(str(index), batch) for index in range(count)]
        here = local.here()
        if here is not None:
            return [(here, batch)]
        tag = partition_of(batch) or ""
        return [(str(zlib.adler32(tag.encode()) % count), batch)]

    return key


def _step(name: str, port: str | None = None) -> str:
    """Bytewax step ids may not contain dots."""
    return name if port is None else f"{name}__{port}"


def _stage_fn(stage: Any, ctx: NodeContext, ports: tuple[str, ...]) -> Any:
    def apply(batch: pa.RecordBatch) -> Pairs:
        if batch.num_rows == 0:  # an idle tick or an end marker: flush, then pass it on to every port
            flushed = flush_stage(stage, ctx, batch)
            pairs = output_pairs(flushed) if flushed is not None else []
            return [*pairs, (None, batch), *((port, batch) for port in ports)]
        pairs = output_pairs(run_stage(stage, ctx, batch), empty_main=True)
        tag = partition_of(batch)
        return pairs if tag is None else tagged(pairs, tag)

    return apply


def _port_fn(port: str | None) -> Any:
    def select(pairs: Pairs) -> list[pa.RecordBatch]:
        return [batch for name, batch in pairs if name == port]

    return select


def _upstream_partitions(compiled: CompiledPipeline, name: str) -> list[str]:
    """Partition names of every source that feeds node `name`, directly or through other stages."""
    graph, seen, pending, found = compiled.graph, set(), [name], []
    while pending:
        current = pending.pop()
        for ref in graph.inputs_of(current):
            if ref.node in seen:
                continue
            seen.add(ref.node)
            instance = compiled.instances[ref.node]
            if isinstance(instance, Source):
                found.extend(instance.partitions())
            else:
                pending.append(ref.node)
    return sorted(set(found))


def build_dataflow(compiled: CompiledPipeline, control: RunControl, sink_partitions: int = 1) -> Dataflow:
    """Wire sources, stages and sinks in topological order; each stage's ports become separate streams.

    `sink_partitions` (the cluster's worker count is the norm) is how many writers a sink that can roll back
    to a snapshot (`PartitionedSink`) gets, and how many buckets a keyed stage spreads its groups over.
    Other sinks get one writer per worker.
    """
    graph = compiled.graph
    flow = Dataflow(graph.spec.name)
    streams: dict[PortRef, Stream[pa.RecordBatch]] = {}
    consumed = {edge.source for edge in graph.edges}
    for node in graph.nodes:
        instance = compiled.instances[node.name]
        counters = compiled.contexts[node.name].counters
        if node.kind == "source":
            adapter = _SourceAdapter(node.name, instance, control, counters)
            streams[PortRef(node.name)] = op.input(node.name, flow, adapter)
            continue
        inputs = [streams[ref] for ref in graph.inputs_of(node.name)]
        upstream = inputs[0] if len(inputs) == 1 else op.merge(_step(node.name, "in"), *inputs)
        if node.kind == "sink":
            if isinstance(instance, PartitionedSink):
                local = _LocalWriters()
                keyed = op.flat_map(_step(node.name, "keyed"), upstream, _keyed_for_sink_partitions(sink_partitions, local))
                op.output(node.name, keyed, _PartitionedSinkAdapter(instance, sink_partitions, control, counters, local))
            else:
                op.output(node.name, upstream, _SinkAdapter(instance, control, counters))
            continue
        if isinstance(instance, PortSelectingStage):
            instance.read_ports(frozenset(port for port in node.ports if PortRef(node.name, port) in consumed))
        if is_keyed_stage(instance):
            partitions = _upstream_partitions(compiled, node.name)
            pairs = keyed_stage_step(node.name, upstream, instance, compiled.contexts[node.name], node.ports, sink_partitions, partitions)
        else:
            pairs = op.map(node.name, upstream, _stage_fn(instance, compiled.contexts[node.name], node.ports))
        for port in (None, *node.ports):
            ref = PortRef(node.name, port)
            if ref in consumed:
                streams[ref] = op.flat_map(_step(node.name, port or "main"), pairs, _port_fn(port))
    return flow
