"""The `parquet` sink's writer for one worker: partitions batches, keeps one open file per partition, rolls them.

A file is committed when it holds `max_file_rows` records, reaches `max_file_size` on disk, grows older
than `max_file_age` (checked on every write, and on the empty batches the engine sends as ticks) or when
the writer closes. Any OSError aborts the writer: its temporary files are deleted and a `TerminalError`
names the file; files committed before stay as they are.

File names carry the writer's id and a sequence number (`part-<time>-<writer>-<seq>-<random>.parquet`).
For crash recovery, `snapshot` commits every open file and returns the last sequence number; a writer
resumed from that state deletes its files numbered after it (written after the snapshot, so the replay from
the snapshot's source positions writes their records again).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from loglake.operators.parquet.align import align_batch, next_schema
from loglake.operators.parquet.config import ParquetConfig
from loglake.operators.parquet.encoding import EncodingError
from loglake.operators.parquet.lineage import FinalMark, parse_part_name
from loglake.operators.parquet.lock import DatasetLock
from loglake.operators.parquet.part_file import FileOptions, PartFile, WriteFailure
from loglake.operators.parquet.partitions import PartitionKeyError, split_by_partition
from loglake.operators.parquet.sort import SortKeyError
from loglake.schemas.errors import TerminalError
from loglake.schemas.records import fill_missing_timestamps
from loglake.schemas.stage import NodeContext

__all__ = ["ParquetSinkWriter", "remove_writer_files"]

log = logging.getLogger(__name__)

_MAX_BUFFERED_BYTES = 64 * 1024**2
"""Records a writer holds in memory across all partitions before it writes the largest buffers out (four full row
groups); a sink with `sort_by` holds its `sort_buffer` instead."""
_MAX_OPEN_FILES = 256
"""Open files per writer; beyond this the oldest is committed (a partition column with many values)."""


class ParquetSinkWriter:
    """Writes one worker's batches into the dataset folder; used by one thread at a time."""

    def __init__(
        self,
        config: ParquetConfig,
        ctx: NodeContext,
        dataset_dir: Path,
        options: FileOptions,
        writer_id: str,
        resume: Any | None = None,
        final: FinalMark | None = None,
    ) -> None:
        self._config = config
        self._ctx = ctx
        self._dataset_dir = dataset_dir
        self._options = options
        self._writer_id = writer_id
        self._final = final
        self._lock = DatasetLock(dataset_dir)
        self._files: dict[str, PartFile] = {}
        self._sequence = 0
        self._max_buffered = options.sort_buffer if options.sort_by else _MAX_BUFFERED_BYTES
        self._background: ThreadPoolExecutor | None = None
        """With `sort_by`: the thread that sorts and writes runs (see `part_file`), from the first file on."""
        if resume is not None:
            self._sequence = int(resume["sequence"])
            removed = remove_writer_files(dataset_dir, writer_id, after=self._sequence)
            if removed:
                log.warning("%s: removed %d file(s) written after the last snapshot; their records are read again", ctx.node, removed)
                ctx.counters.add("files_rolled_back", removed)

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add records to their partitions' files; an empty batch only rolls files past `max_file_age`."""
        with self._aborting_on_failure():
            if batch.num_rows:
                self._write_records(batch)
            self._roll_aged()

    def close(self) -> None:
        """Commit every open file, and stop the thread writing sorted runs."""
        try:
            self._commit_all()
        finally:
            self._stop_background()

    def snapshot(self) -> dict[str, Any]:
        """Commit every open file; the state a resumed writer rolls back to (`resume=`)."""
        self._commit_all()
        if self._final is not None:
            self._final.snapshot_taken(self._sequence)
        return {"sequence": self._sequence, "writer": self._writer_id}

    def abort(self) -> None:
        """Delete every uncommitted file of this writer; committed files stay."""
        for part in self._files.values():
            part.discard()
        self._files.clear()
        self._stop_background()

    def _stop_background(self) -> None:
        if self._background is not None:
            self._background.shutdown()
            self._background = None

    def _commit_all(self) -> None:
        """Commit every open file; a write failure aborts the writer (see `_aborting_on_failure`)."""
        with self._aborting_on_failure():
            for folder in list(self._files):
                self._commit(folder)

    def _write_records(self, batch: pa.RecordBatch | pa.Table) -> None:
        batches = batch.to_batches() if isinstance(batch, pa.Table) else [batch]
        now = datetime.now(timezone.utc)
        for records in batches:
            timed = fill_missing_timestamps(records, now)
            for folder, rows in split_by_partition(timed, self._config.partition_by):
                self._append(folder, rows)
        self._bound_memory()

    def _append(self, folder: str, rows: pa.RecordBatch) -> None:
        """Append to the partition's file, committing it whenever it is full (so rows may span files)."""
        while rows.num_rows:
            part, fitted = self._file_for(folder, rows)
            room = self._config.max_file_rows - part.rows
            part.append(fitted.slice(0, room))
            if part.rows >= self._config.max_file_rows or part.size >= self._config.max_file_size:
                self._commit(folder)
            rows = fitted.slice(room)

    def _file_for(self, folder: str, rows: pa.RecordBatch) -> tuple[PartFile, pa.RecordBatch]:
        """The open file that `rows` fit (committing one they do not fit) and `rows` fitted to its schema."""
        part = self._files.get(folder)
        if part is not None:
            fitted = align_batch(rows, part.schema)
            if fitted is not None:
                return part, fitted
            log.debug("%s: schema changed in %s; committing %s", self._ctx.node, folder or ".", part.path.name)
            self._commit(folder)
        schema, fitted = next_schema(part.schema if part is not None else None, rows)
        part = self._open(folder, schema)
        return part, fitted

    def _open(self, folder: str, schema: pa.Schema) -> PartFile:
        if len(self._files) >= _MAX_OPEN_FILES:
            self._commit(next(iter(self._files)))
        self._sequence += 1
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        name = f"part-{stamp}-{self._writer_id}-{self._sequence:06d}-{secrets.token_hex(4)}.parquet"
        if self._options.sort_by and self._background is None:
            self._background = ThreadPoolExecutor(1, thread_name_prefix=f"{self._ctx.node}-sorted-runs")
        part = PartFile(self._dataset_dir / folder, name, schema, self._options, self._lock, self._background)
        self._files[folder] = part
        return part

    def _commit(self, folder: str) -> None:
        part = self._files.pop(folder)
        try:
            size = part.commit()
        except WriteFailure:
            part.discard()
            raise
        counters = self._ctx.counters
        counters.add("records_out", part.rows)
        counters.add("files_written")
        counters.add("bytes_written", size)
        log.info("%s: committed %s (%d rows, %d bytes)", self._ctx.node, part.path, part.rows, size)

    def _roll_aged(self) -> None:
        limit = self._config.max_file_age.total_seconds()
        now = time.monotonic()
        for folder in [f for f, part in self._files.items() if now - part.opened_at >= limit]:
            self._commit(folder)

    def _bound_memory(self) -> None:
        """Write out buffers while the writer holds more than it may (see `_MAX_BUFFERED_BYTES`), once the writes
        in flight are done.

        The largest buffer goes first. With `sort_by`, the file written to least recently (an hour that has
        ended and only gets late records), so the file still growing keeps its sorted run as long as it can;
        and the buffers get half of `sort_buffer`, the runs being written the other half.
        """
        total = sum(part.buffered_bytes for part in self._files.values())
        limit = self._max_buffered // 2 if self._options.sort_by else self._max_buffered
        if total <= limit:
            return
        for part in self._files.values():
            part.wait()
        if self._options.sort_by:
            order = sorted(self._files.values(), key=lambda p: p.appended_at)
        else:
            order = sorted(self._files.values(), key=lambda p: p.buffered_bytes, reverse=True)
        for part in order:
            if total <= limit:
                break
            total -= part.buffered_bytes
            part.flush()

    @contextlib.contextmanager
    def _aborting_on_failure(self) -> Iterator[None]:
        """Turn a write failure into an aborted writer and a `TerminalError` naming the node and the file."""
        try:
            yield
        except (WriteFailure, PartitionKeyError, SortKeyError, EncodingError) as exc:
            self.abort()
            raise TerminalError(str(exc), node=self._ctx.node) from exc


def remove_writer_files(dataset_dir: Path, writer_id: str, after: int) -> int:
    """Delete writer `writer_id`'s files numbered after `after`, committed or not; how many were deleted."""
    if not dataset_dir.is_dir():
        return 0
    removed = 0
    for path in dataset_dir.rglob(f"*part-*-{writer_id}-*"):
        name = parse_part_name(path.name)
        if name is not None and name.writer == writer_id and (name.sequence > after or name.in_progress):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
