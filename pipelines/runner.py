"""Run a pipeline to completion (bounded input) or until stopped (follow mode), and report what happened."""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from bytewax.recovery import RecoveryConfig
from bytewax.testing import cluster_main

from loglake.pipelines.checkpoint import PositionTracker, checkpoint_path, load_checkpoint, save_checkpoint
from loglake.pipelines.compile import CompiledPipeline, load_and_compile
from loglake.pipelines.dataflow import RunControl, build_dataflow
from loglake.pipelines.keyed import is_keyed_stage
from loglake.pipelines.maintenance import maintenance_tasks, parquet_datasets, scheduled_maintenance
from loglake.pipelines.recovery import prepare_recovery_dir
from loglake.schemas.errors import LoglakeError, TerminalError
from loglake.schemas.stage import FlushingStage

__all__ = ["RunOptions", "NodeReport", "RunResult", "run_pipeline", "run_compiled", "on_stop_signals"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How to run: worker threads, cluster membership, crash recovery, follow override, checkpoint use and reset."""

    workers: int = 1
    """Worker threads in this process."""
    follow: bool | None = None
    reset: bool = False
    """Ignore the saved checkpoint and recovery snapshots: start from each source's configured start."""
    checkpoint: bool = True
    """Resume from the saved checkpoint, save one at the end and commit sources' offsets (a Kafka group); False
    (a replay) reads from each source's configured start and leaves every saved position as it was."""
    process_id: int = 0
    """This process's index in `addresses`."""
    addresses: tuple[str, ...] = ()
    """`host:port` of every process of the cluster, the same list in each; empty for a single process."""
    recovery_dir: Path | None = None
    """Where this process keeps its recovery snapshots; None runs without crash recovery."""
    snapshot_interval: timedelta = timedelta(seconds=10)
    """How often source positions, stage state and sink commits are snapshotted together (the epoch)."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on this port while the run lasts."""
    maintenance: bool = True
    """Run the compaction and retention the Parquet sinks schedule (in process 0 only); False for replays."""

    @property
    def processes(self) -> int:
        return max(1, len(self.addresses))


@dataclass(frozen=True)
class NodeReport:
    """One node's counters at the end of a run."""

    name: str
    kind: str
    type_name: str
    counts: dict[str, int]


@dataclass
class RunResult:
    """What a run did, for the summary."""

    pipeline: str
    elapsed: float
    nodes: list[NodeReport]
    lake_dir: Path
    checkpoint: Path
    stopped_early: bool = False
    resumed: bool = False
    datasets: dict[str, Path] = field(default_factory=dict)
    processes: int = 1
    """How many processes ran it (their counts summed: `--processes`)."""

    @property
    def records_read(self) -> int:
        """Records all sources emitted."""
        return sum(node.counts.get("records_in", 0) for node in self.nodes if node.kind == "source")

    @property
    def rate(self) -> float:
        """Source records per second over the whole run."""
        return self.records_read / self.elapsed if self.elapsed > 0 else 0.0


def run_pipeline(file: str | Path, options: RunOptions = RunOptions()) -> RunResult:
    """Validate, build and run a pipeline file; raises SpecError before anything starts, LoglakeError at runtime."""
    return run_compiled(load_and_compile(file, follow=options.follow), options)


def run_compiled(compiled: CompiledPipeline, options: RunOptions = RunOptions()) -> RunResult:
    """Run an already compiled pipeline."""
    spec = compiled.spec
    checkpoint = checkpoint_path(spec.lake_dir, spec.name)
    resume = _remapped(compiled, load_checkpoint(checkpoint)) if options.checkpoint and not options.reset else {}
    recovery, store_existed = _recovery_config(options)
    if recovery is not None:
        _warn_about_state_outside_snapshots(compiled)
    control = RunControl(PositionTracker(resume), recovery=recovery is not None, resuming_store=store_existed)
    flow = build_dataflow(compiled, control, sink_partitions=options.workers * options.processes)
    started = time.perf_counter()
    log.info(
        "%s: starting %d worker(s) in process %d of %d%s%s",
        spec.name,
        options.workers,
        options.process_id,
        options.processes,
        " (resuming from checkpoint)" if resume else "",
        f", snapshots every {options.snapshot_interval.total_seconds():g}s in {options.recovery_dir}" if recovery else "",
    )
    tasks = maintenance_tasks(parquet_datasets(compiled.instances, spec.lake_dir)) if options.maintenance and options.process_id == 0 else []
    with _graceful_stop(control.stop), _metrics_served(compiled, options.metrics_port), scheduled_maintenance(tasks):
        try:
            cluster_main(  # type: ignore[no-untyped-call]
                flow,
                list(options.addresses),
                options.process_id,
                epoch_interval=options.snapshot_interval,
                recovery_config=recovery,
                worker_count_per_proc=options.workers,
            )
        except BaseException as exc:
            control.abort_writers()
            for later in control.close_errors:
                log.warning("also, a writer failed to close: %s: %s", type(later).__name__, later)
            raise _user_facing(exc) from None
        if control.close_errors:  # a writer could not finish its files: nothing may count as written
            control.abort_writers()
            raise _user_facing(control.close_errors[0])
    elapsed = time.perf_counter() - started
    if options.checkpoint:
        if options.processes > 1:
            save_checkpoint(checkpoint, control.positions.recorded(), merge=True)
        else:
            save_checkpoint(checkpoint, control.positions.snapshot())
        _commit_source_offsets(compiled, control.positions.recorded())
    return RunResult(
        pipeline=spec.name,
        elapsed=elapsed,
        nodes=_reports(compiled),
        lake_dir=spec.lake_dir,
        checkpoint=checkpoint,
        stopped_early=control.stop.is_set(),
        resumed=bool(resume),
        datasets={
            inst.dataset_name: inst.dataset_dir
            for inst in compiled.instances.values()
            if hasattr(inst, "dataset_dir") and hasattr(inst, "dataset_name")
        },
    )


def _warn_about_state_outside_snapshots(compiled: CompiledPipeline) -> None:
    """Name the stages whose held-back records are not in Bytewax snapshots (multiline joins in progress)."""
    for node in compiled.graph.nodes:
        instance = compiled.instances[node.name]
        if isinstance(instance, FlushingStage) and not is_keyed_stage(instance):
            log.warning(
                "%s: %s holds records between batches outside the recovery snapshots; records it holds when the "
                "process is killed are lost (a clean stop flushes them)",
                node.name,
                node.type_name,
            )


def _commit_source_offsets(compiled: CompiledPipeline, positions: dict[str, dict[str, Any]]) -> None:
    """Tell sources that keep positions elsewhere too (a Kafka consumer group) where this run got to."""
    for name, reached in positions.items():
        commit = getattr(compiled.instances.get(name), "commit_offsets", None)
        if commit is not None and reached:
            commit(reached, wait=True)


def _recovery_config(options: RunOptions) -> tuple[RecoveryConfig | None, bool]:
    """Bytewax's recovery settings (None without `--recovery-dir`) and whether the snapshot store existed."""
    if options.recovery_dir is None:
        return None, False
    existed = prepare_recovery_dir(options.recovery_dir, options.process_id, options.processes, reset=options.reset)
    return RecoveryConfig(options.recovery_dir), existed  # type: ignore[no-untyped-call]


def _remapped(compiled: CompiledPipeline, saved: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Saved positions re-keyed by sources whose partitions can change between runs (`remap_positions`)."""
    out = dict(saved)
    for name, positions in saved.items():
        remap = getattr(compiled.instances.get(name), "remap_positions", None)
        if remap is not None:
            out[name] = remap(positions)
    return out


def _reports(compiled: CompiledPipeline) -> list[NodeReport]:
    return [
        NodeReport(node.name, node.kind, node.type_name, compiled.contexts[node.name].counters.snapshot())
        for node in compiled.graph.nodes
    ]


@contextmanager
def _metrics_served(compiled: CompiledPipeline, port: int | None) -> Iterator[None]:
    """Serve /metrics for the run's duration and feed its batch-latency histogram from the nodes' timings."""
    if port is None:
        yield
        return
    from loglake.pipelines.metrics import start_metrics_server

    server = start_metrics_server(port, compiled)
    log.info("metrics: %s", server.url)
    for name, ctx in compiled.contexts.items():
        ctx.counters.observe = functools.partial(server.latency.observe, name)
    try:
        yield
    finally:
        for ctx in compiled.contexts.values():
            ctx.counters.observe = None
        server.stop()


@contextmanager
def _graceful_stop(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM ask sources to stop; the dataflow then drains, sinks commit and the run ends normally.

    A second signal while draining interrupts at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("stopping: draining in-flight records and committing files (signal again to abort)")
        stop.set()

    with on_stop_signals(request_stop):
        yield


@contextmanager
def on_stop_signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """`handler` answers SIGINT and SIGTERM inside the block; the previous handlers come back after it."""
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, earlier in previous.items():
            signal.signal(sig, earlier)


def _user_facing(exc: BaseException) -> BaseException:
    """The LoglakeError behind a Bytewax failure, or a TerminalError carrying the original reason."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, LoglakeError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    if isinstance(exc, KeyboardInterrupt):
        return TerminalError("interrupted; uncommitted files were discarded and the checkpoint was not advanced")
    return TerminalError(f"pipeline failed: {type(exc).__name__}: {exc}")
