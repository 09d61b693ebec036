"""Compaction: merge a dataset's small part files, partition by partition, into files of a target size.

Streaming pipelines commit a file per writer every `max_file_age`, so an hour partition collects many small
files; DuckDB pays per file (a footer read, a thread task). Compaction rewrites each partition's small files
into few large ones and then swaps the partition folder atomically (`partition_swap`), so a concurrent query
sees every row exactly once. It never touches:
- a partition with a file in progress, or one modified less than `min_age` ago (a writer may still add to it);
- a file a crash recovery could still roll back (`lineage`): it stays as it is, beside the merged files;
- files already at least half the target size.
Files are merged in name order (the order they were written), so rows keep their order within a partition;
a dataset whose sink has `sort_by` is sorted again in runs of its `sort_buffer` (a merged file's runs are as
long as that allows, so its row groups' statistics stay narrow).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from loglake.operators.parquet.config import ParquetConfig
from loglake.operators.parquet.lineage import parse_part_name, unfinal_sequences
from loglake.operators.parquet.lock import DatasetLock
from loglake.operators.parquet.part_file import FileOptions
from loglake.operators.parquet.encoding import EncodingError
from loglake.operators.parquet.sort import SortKeyError
from loglake.pipelines.partition_swap import discard, has_file_in_progress, install_partition, leaf_partitions, staging_folder
from loglake.schemas.errors import LoglakeError

__all__ = ["CompactionOptions", "CompactionResult", "CompactionError", "compact_dataset"]

log = logging.getLogger(__name__)


class CompactionError(LoglakeError):
    """A dataset compaction cannot work on, or a merge that did not keep every row."""


@dataclass(frozen=True)
class CompactionOptions:
    """How large merged files grow, which partitions are left alone, and how merged files are encoded."""

    target_size: int = 128 * 1024**2
    """Bytes on disk a merged file grows to (at most, give or take one row group)."""
    max_rows: int = 1_000_000
    """Records a merged file holds at most."""
    min_age: timedelta = timedelta(minutes=15)
    """A partition is merged only when its newest file is at least this old."""
    file_options: FileOptions = field(default_factory=lambda: FileOptions.from_config(ParquetConfig(type="parquet", dataset="compacted")))
    """Compression and row groups of merged files (the dataset's sink settings, when known)."""


@dataclass
class PartitionPlan:
    """One partition's merge: groups of small files that each become one file."""

    relative: Path
    groups: list[list[Path]]
    bytes: int

    @property
    def inputs(self) -> list[Path]:
        return [path for group in self.groups for path in group]


@dataclass
class CompactionResult:
    """What a compaction merged (or would merge, in a dry run) and what it left alone, with the reason."""

    partitions: int = 0
    files_in: int = 0
    files_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rows: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def compact_dataset(
    dataset: Path,
    lineage: tuple[Path, str],
    options: CompactionOptions,
    dry_run: bool = False,
    stop: threading.Event | None = None,
) -> CompactionResult:
    """Compact every partition of `dataset` that needs it; `lineage` is (lake folder, dataset name).

    `stop`, once set, ends the pass after the partition in hand (a pipeline shutting down).

    Raises CompactionError if the dataset does not exist or a merged file does not hold its inputs' rows
    (then the partition is left as it was).
    """
    if not dataset.is_dir():
        raise CompactionError(f"dataset folder {dataset} does not exist")
    floors = unfinal_sequences(*lineage)
    result = CompactionResult()
    lock = DatasetLock(dataset)
    cutoff = time.time() - options.min_age.total_seconds()
    for relative in leaf_partitions(dataset):
        if stop is not None and stop.is_set():
            break
        plan, reason = _plan(dataset / relative, relative, floors, options, cutoff)
        if plan is None:
            if reason:
                result.skipped.append((relative, reason))
            continue
        if dry_run:
            _count_plan(result, plan)
            continue
        _compact_partition(dataset, plan, options, lock, result)
    return result


def _plan(
    folder: Path, relative: Path, floors: dict[str, int], options: CompactionOptions, cutoff: float
) -> tuple[PartitionPlan | None, str]:
    """The merge for one partition, or None with why not ("" when it simply has nothing to merge)."""
    if any(child.is_dir() for child in folder.iterdir()):
        return None, "holds both files and partition folders"
    if has_file_in_progress(folder):
        return None, "a writer has a file in progress"
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".parquet")
    stats = {path: path.stat() for path in files}
    if max(stat.st_mtime for stat in stats.values()) > cutoff:
        return None, "written to less than min_age ago"
    small = [path for path in files if stats[path].st_size < options.target_size // 2 and _is_final(path, floors)]
    groups: list[list[Path]] = []
    size = options.target_size
    for path in small:
        if size + stats[path].st_size > options.target_size:
            groups.append([])
            size = 0
        groups[-1].append(path)
        size += stats[path].st_size
    groups = [group for group in groups if len(group) > 1]
    size = sum(stats[path].st_size for group in groups for path in group)
    return (PartitionPlan(relative, groups, size), "") if groups else (None, "")


def _is_final(path: Path, floors: dict[str, int]) -> bool:
    """Whether no crash recovery can delete this file any more."""
    name = parse_part_name(path.name)
    return name is None or name.writer not in floors or name.sequence <= floors[name.writer]


def _count_plan(result: CompactionResult, plan: PartitionPlan) -> None:
    result.partitions += 1
    result.files_in += len(plan.inputs)
    result.files_out += len(plan.groups)
    result.bytes_in += plan.bytes


def _compact_partition(
    dataset: Path, plan: PartitionPlan, options: CompactionOptions, lock: DatasetLock, result: CompactionResult
) -> None:
    """Write the merged files into a staging folder, then swap it in with the files left as they were."""
    staged = staging_folder(dataset, "compact")
    try:
        merged = [_merge(group, staged, options, sequence) for sequence, group in enumerate(plan.groups, 1)]
        with lock.exclusive():
            installed = _link_rest(dataset / plan.relative, staged, set(plan.inputs)) and install_partition(
                dataset, plan.relative, staged
            )
        if not installed:
            result.skipped.append((plan.relative, "changed while it was being compacted; try again"))
            return
    finally:
        discard(staged)  # after a swap this holds the old files
    _count_plan(result, plan)
    result.bytes_out += sum(size for size, _ in merged)
    result.rows += sum(rows for _, rows in merged)
    log.info("compacted %s: %d files into %d", plan.relative, len(plan.inputs), len(merged))


def _link_rest(live: Path, staged: Path, merged_inputs: set[Path]) -> bool:
    """Hard-link every file of the partition that was not merged into `staged`; False if an input is gone."""
    present = {path for path in live.iterdir() if path.is_file()}
    if not merged_inputs <= present:
        return False
    for path in present - merged_inputs:
        os.link(path, staged / path.name)
    return True


def _merge(group: list[Path], staged: Path, options: CompactionOptions, sequence: int) -> tuple[int, int]:
    """Stream `group`'s rows, in order (or sorted in runs, with `sort_by`), into one new file in `staged`; (its size, its rows).

    Memory stays at about one row group (or twice `sort_buffer`): input files are read a row group at a time.
    """
    schema = pa.unify_schemas([pq.read_schema(path) for path in group], promote_options="permissive")
    try:
        options.file_options.check_schema(schema)
    except (SortKeyError, EncodingError) as exc:
        raise CompactionError(f"{group[0].parent}: {exc}") from None
    expected = sum(pq.ParquetFile(path).metadata.num_rows for path in group)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    target = staged / f"part-{stamp}-c{secrets.token_hex(3)}-{sequence:06d}-{secrets.token_hex(4)}.parquet"
    file_options = options.file_options
    group_rows = file_options.row_group_size
    with pa.OSFile(str(target), "wb") as sink, file_options.parquet_writer(sink, schema) as writer:
        pending: list[pa.RecordBatch] = []
        rows = 0
        for path in group:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=group_rows):
                pending.append(_fit(batch, schema))
                rows += batch.num_rows
                if _run_is_full(pending, file_options):
                    _write(writer, pending, schema, file_options)
                    pending = []
        if pending:
            _write(writer, pending, schema, file_options)
    written = pq.ParquetFile(target).metadata.num_rows
    if written != expected or rows != expected:
        raise CompactionError(f"merging {len(group)} files of {group[0].parent} kept {written} of {expected} rows")
    return target.stat().st_size, written


def _run_is_full(pending: list[pa.RecordBatch], options: FileOptions) -> bool:
    """Whether the pending rows make a row group (or, with `sort_by`, a run of `sort_buffer`)."""
    if options.sort_by:
        return sum(int(b.nbytes) for b in pending) >= options.sort_buffer
    return sum(int(b.num_rows) for b in pending) >= options.row_group_size


def _write(writer: pq.ParquetWriter, pending: list[pa.RecordBatch], schema: pa.Schema, options: FileOptions) -> None:
    if options.sort_by:
        options.write_run(writer, pending, schema)
    else:
        writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=options.row_group_size)


def _fit(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with `schema`'s columns in its order: missing ones null, types widened."""
    columns = [
        batch.column(f.name).cast(f.type) if f.name in batch.schema.names else pa.nulls(batch.num_rows, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
