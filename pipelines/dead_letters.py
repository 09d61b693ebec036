"""Dead letters read back for `replay --from dead-letter`, and taken out of the dead-letter dataset once replayed.

A dead letter is a record as stage `_error_node` received it, plus `_error`, `_error_node` and what the
dead-letter sink added: the `date`/`hour` folders (the `lake` source leaves them out) and, for a record without
an event time, the time it was written, flagged by `_timestamp_defaulted`. `restore` takes all that off again.
Dead letters have no id, so each is known by its file and row number, captured as it is read; `remove_rows`
rewrites each file without the rows replayed (under a hidden name, synced, then renamed over the old one).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loglake.operators.lake_source import ROW_ID_COLUMNS, LakeConfig, LakePartition, LakeSource
from loglake.pipelines.spec import DEAD_LETTER_NODE, PipelineSpec
from loglake.schemas.records import ERROR_COLUMN, ERROR_NODE_COLUMN, TIMESTAMP_DEFAULTED_COLUMN
from loglake.schemas.stage import NodeContext

__all__ = ["ReadRows", "DeadLetterSource", "dead_letter_folder", "restore", "remove_rows"]

_ADDED = (ERROR_COLUMN, ERROR_NODE_COLUMN, TIMESTAMP_DEFAULTED_COLUMN)
"""Columns a record gets on its way into the dead-letter dataset."""


def dead_letter_folder(spec: PipelineSpec) -> Path | None:
    """The folder the pipeline's dead-letter sink writes, or None when that sink is not a Parquet dataset."""
    node = spec.nodes[DEAD_LETTER_NODE]
    if node.type_name != "parquet":
        return None
    sink = node.registration.factory(node.config, NodeContext(node=node.name, base_dir=spec.base_dir, lake_dir=spec.lake_dir))
    return Path(sink.dataset_dir)


def restore(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dead letters as their stage received them: the error columns gone, a defaulted `timestamp` null again
    (and the column gone when no record has one)."""
    names = batch.schema.names
    if TIMESTAMP_DEFAULTED_COLUMN in names and "timestamp" in names:
        index = names.index("timestamp")
        defaulted = pc.fill_null(batch.column(TIMESTAMP_DEFAULTED_COLUMN), False)
        stamps = batch.column(index)
        batch = batch.set_column(index, batch.schema.field(index), pc.if_else(defaulted, pa.scalar(None, stamps.type), stamps))
    batch = batch.drop_columns([name for name in _ADDED if name in names])
    if "timestamp" in names and batch.column("timestamp").null_count == batch.num_rows:
        batch = batch.drop_columns(["timestamp"])
    return batch


class ReadRows:
    """The dead-letter rows a replay has read, by file; filled by the source's partitions from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[Path, list[pa.Array]] = {}

    def take(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Note the file and row number of each record of `batch`, and return it without them."""
        file_column, row_column = ROW_ID_COLUMNS
        files, rows = batch.column(file_column), batch.column(row_column)
        for name in pc.unique(files).to_pylist():
            found = rows.filter(pc.equal(files, name))
            with self._lock:
                self._rows.setdefault(Path(name), []).append(found)
        return batch.drop_columns(list(ROW_ID_COLUMNS))

    def by_file(self) -> dict[Path, pa.Array]:
        """Each file read and the numbers of its rows read."""
        with self._lock:
            return {path: pa.concat_arrays(parts) for path, parts in self._rows.items()}


class DeadLetterSource:
    """A `lake` source over the dead-letter dataset whose records come out restored, their rows noted in `read`."""

    def __init__(self, config: LakeConfig, ctx: NodeContext, read: ReadRows) -> None:
        self._source = LakeSource(config, ctx, row_ids=True)
        self._read = read

    def partitions(self) -> list[str]:
        """The dataset's partition folders."""
        return self._source.partitions()

    def open(self, partition: str, resume: Any | None) -> _DeadLetterPartition:
        """Read one partition folder."""
        return _DeadLetterPartition(self._source.open(partition, resume), self._read)

    def expected_records(self) -> int:
        """Dead letters the source will read."""
        return self._source.expected_records()


class _DeadLetterPartition:
    """A partition folder of the dead-letter dataset, its records restored and their rows noted."""

    def __init__(self, reader: LakePartition, read: ReadRows) -> None:
        self._reader, self._read = reader, read

    def read(self) -> pa.RecordBatch | None:
        """The next batch of restored records (`EndOfInput` after the last)."""
        batch = self._reader.read()
        return None if batch is None else restore(self._read.take(batch))

    def position(self) -> Any:
        """The wrapped partition's position."""
        return self._reader.position()

    def close(self) -> None:
        """Close the wrapped partition."""
        self._reader.close()


def remove_rows(rows: dict[Path, pa.Array]) -> int:
    """Take rows out of their files, one file at a time and atomically; a file left empty is deleted. Returns
    the rows removed."""
    return sum((_rewrite_without(path, numbers) for path, numbers in rows.items()), 0)


def _rewrite_without(path: Path, numbers: pa.Array) -> int:
    """Write `path` again without rows `numbers` (temporary name, fsync, rename over it); the rows removed."""
    with pq.ParquetFile(path) as parquet:
        table = parquet.read()
        codec = _codec(parquet.metadata)
    everything = pa.array(range(table.num_rows), pa.int64())
    kept = table.filter(pc.invert(pc.is_in(everything, value_set=pc.cast(numbers, pa.int64()))))
    removed = int(table.num_rows - kept.num_rows)
    if kept.num_rows == 0:
        path.unlink()
        return removed
    temp = path.with_name(f".{path.name}.inprogress")
    with open(temp, "wb") as handle:
        pq.write_table(kept, handle, compression=codec)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    return removed


def _codec(metadata: pq.FileMetaData) -> str:
    """The compression a file was written with (that of its first column chunk), to write it again alike."""
    if metadata.num_row_groups == 0:
        return "zstd"
    codec = str(metadata.row_group(0).column(0).compression).lower()
    return "none" if codec == "uncompressed" else codec
