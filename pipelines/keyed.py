"""Stages whose state is keyed (windows): batches are split by group key over buckets held in Bytewax state.

A keyed stage (`operators/window`) offers, besides `process`/`flush` on one private state, hooks that
let the engine spread its groups over workers and snapshot them for crash recovery:

- `route(batch, buckets)` splits a batch by a stable hash of the group key (one sub-batch per bucket);
- `progress(batch)` is how far the batch moves its source partition's event time; every bucket is told,
  also those that get no rows, so each bucket's watermark is the minimum over all source partitions;
- `new_state()`, `apply(state, rows, partition, progress, now)` and `on_flush(state, ended, now)` run
  one bucket; the state is pickled into Bytewax snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
from bytewax import operators as op
from bytewax.dataflow import Stream

from loglake.pipelines.compile import Pairs, flush_stage, output_pairs, run_stage, tagged
from loglake.pipelines.worker_keys import bucket_keys
from loglake.schemas.stage import NodeContext, StageOutput, ended_partition, partition_of

__all__ = ["is_keyed_stage", "keyed_stage_step"]

_HOOKS = ("route", "progress", "new_state", "apply", "on_flush")


def is_keyed_stage(stage: Any) -> bool:
    """Whether a stage keeps keyed state the engine should spread over workers."""
    return all(callable(getattr(stage, hook, None)) for hook in _HOOKS)


@dataclass(frozen=True)
class _Piece:
    """What one bucket gets from one upstream batch: its rows (maybe none) and the partition's progress."""

    rows: pa.RecordBatch
    partition: str
    progress: datetime | None
    signal: bool
    """An idle tick or end marker (rows is then the signal batch itself)."""
    passes_on: bool
    """Whether this bucket forwards the signal downstream (exactly one bucket does)."""


def keyed_stage_step(
    name: str,
    upstream: Stream[pa.RecordBatch],
    stage: Any,
    ctx: NodeContext,
    ports: tuple[str, ...],
    buckets: int,
    partitions: list[str],
) -> Stream[Pairs]:
    """The stream of (port, batch) lists a keyed stage produces, its state held per bucket in Bytewax.

    `partitions` are the source partitions upstream of the stage: each holds every bucket's watermark
    back from the start until it sends, ends or idles (a reader that starts late makes nothing late).
    """

    keys = bucket_keys(buckets)  # bucket i on worker i: the groups spread over every worker

    def split(batch: pa.RecordBatch) -> list[tuple[str, _Piece]]:
        if batch.num_rows == 0:
            partition = ended_partition(batch) or ""
            return [(keys[index], _Piece(batch, partition, None, True, index == 0)) for index in range(buckets)]
        partition = partition_of(batch) or ""
        progress = stage.progress(batch)
        parts = stage.route(batch, buckets)
        return [(keys[index], _Piece(part, partition, progress, False, False)) for index, part in enumerate(parts)]

    def step(state: Any | None, piece: _Piece) -> tuple[Any, list[Pairs]]:
        now = datetime.now(timezone.utc)
        state = stage.new_state(partitions, now) if state is None else state
        pairs: Pairs = []
        if piece.signal:
            flushed = flush_stage(stage, ctx, piece.rows, lambda ended: stage.on_flush(state, ended, now))
            if flushed is not None:
                pairs.extend(output_pairs(flushed))
            if piece.passes_on:
                pairs.extend([(None, piece.rows), *((port, piece.rows) for port in ports)])
            return state, [pairs]

        def apply(rows: pa.RecordBatch) -> StageOutput:
            output: StageOutput = stage.apply(state, rows, piece.partition, piece.progress, now)
            return output

        pairs.extend(output_pairs(run_stage(stage, ctx, piece.rows, apply)))  # empty parts too: they carry progress
        return state, [tagged(pairs, piece.partition) if piece.partition else pairs]

    keyed = op.flat_map(f"{name}__buckets", upstream, split)
    stateful = op.stateful_flat_map(f"{name}__state", keyed, step)
    return op.map(f"{name}__unkeyed", stateful, lambda item: item[1])

