"""One Parquet file of one partition: buffered into row groups, written under a hidden name, renamed on commit.

The temporary name (`.part-….parquet.inprogress`) does not end in `.parquet`, so a reader globbing
`**/*.parquet` sees a file only once it is complete: `commit` closes it, syncs it to disk and renames it.
Without `sort_by`, records are written as soon as they fill a row group; with it, they stay buffered until
the writer flushes the file (it holds `sort_buffer` across its files) or commits it, and each flush writes
one sorted run (see `sort`), so the file's size on disk lags further behind its records.

With `sort_by` and a `background` thread (its writer's), a flush hands the sorted run to it and returns:
sorting, gathering and encoding a run are Arrow's C++ work, which holds no GIL, so it runs beside the
engine's thread (parsing the next batches) on another core. A file has at most one run in flight; the next
flush, the commit and `wait` wait for it, and an OSError it met is raised there as a WriteFailure naming
the file. `size` counts a run once it is written, so a file rolled by `max_file_size` may hold one run more.
Row groups of unsorted files are written at once, so their `size` is exact.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from loglake.operators.parquet.config import ParquetConfig
from loglake.operators.parquet.encoding import writer_encodings
from loglake.operators.parquet.lock import DatasetLock
from loglake.operators.parquet.sort import check_sortable, even_group_rows, sort_order, sorting_columns

__all__ = ["FileOptions", "PartFile", "WriteFailure", "check_codec"]

_GROUP_BYTES = 16 * 1024**2
"""Buffered bytes (Arrow, uncompressed) that make a row group even when it holds fewer rows than `row_group_size`.

A file holds its next row group in memory until it is written, so this bounds each open file's memory:
16 MiB is ~25,000 enriched access-log records, 1–4 MiB once compressed, a row group DuckDB still reads in
parallel; 64 MiB groups kept a two-sink pipeline's peak RSS over 380 MiB.
"""


@dataclass(frozen=True)
class FileOptions:
    """How part files are encoded, how large their row groups grow, and the order their records are written in."""

    compression: str
    compression_level: int | None
    row_group_size: int
    group_bytes: int
    sort_by: tuple[str, ...] = ()
    sort_buffer: int = 64 * 1024**2
    """With `sort_by`: the records a writer holds across its files, half buffered, half in the sorted runs being written."""
    column_encoding: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: ParquetConfig) -> FileOptions:
        """The options a `parquet` sink's config asks for; a row group never buffers more than one file may hold."""
        group_bytes = min(config.max_file_size, _GROUP_BYTES)
        return cls(
            config.compression, config.compression_level, config.row_group_size, group_bytes,
            tuple(config.sort_by), config.sort_buffer, dict(config.column_encoding),
        )

    def check_schema(self, schema: pa.Schema) -> None:
        """Raise SortKeyError or EncodingError if the sort columns or column encodings do not fit `schema`'s types."""
        check_sortable(schema, self.sort_by)
        writer_encodings(schema, self.column_encoding)

    def parquet_writer(self, where: pa.NativeFile, schema: pa.Schema) -> pq.ParquetWriter:
        """A ParquetWriter with these options (whose row groups, with `sort_by`, must be written by `write_run`)."""
        use_dictionary, column_encoding = writer_encodings(schema, self.column_encoding)
        return pq.ParquetWriter(
            where, schema, compression=self.compression, compression_level=self.compression_level,
            use_dictionary=use_dictionary, column_encoding=column_encoding, sorting_columns=sorting_columns(schema, self.sort_by),
        )

    def write_run(self, writer: pq.ParquetWriter, records: list[pa.RecordBatch], schema: pa.Schema) -> None:
        """Write `records` (of `schema`) sorted by `sort_by`, in row groups of even size within `row_group_size` and
        `group_bytes`; `records` is emptied, so the batches are freed while they are written.

        Before sorting, each column's chunks are copied into one array and freed, a column at a time: sorting then
        holds the records once, plus one column and one row group (gathered in sorted order, a group at a time).
        Taking rows from a column of many chunks would copy the whole column first, for every row group.
        """
        table = pa.Table.from_batches(records, schema=schema)
        records.clear()
        rows = even_group_rows(table.num_rows, table.nbytes, self.row_group_size, self.group_bytes)
        order = sort_order(table, self.sort_by)
        if order is not None:
            columns: list[pa.Array | pa.ChunkedArray] = table.columns
            del table  # the only references to the batches' buffers are now `columns`
            for index in range(len(columns)):
                columns[index] = columns[index].combine_chunks()
            table = pa.Table.from_arrays(columns, schema=schema)
            del columns
        for start in range(0, table.num_rows, rows):
            group = table.slice(start, rows) if order is None else table.take(order.slice(start, rows))
            writer.write_table(group, row_group_size=rows)


class WriteFailure(Exception):
    """An OSError while writing a part file, with the file's final path."""

    def __init__(self, path: Path, error: OSError) -> None:
        self.path = path
        self.reason = os.strerror(error.errno) if error.errno else str(error)
        super().__init__(f"cannot write {path}: {self.reason}")


def check_codec(options: FileOptions) -> None:
    """Raise ValueError if the codec rejects its level (an in-memory file is written to find out)."""
    schema = pa.schema([("probe", pa.int64())])
    try:
        writer = options.parquet_writer(pa.BufferOutputStream(), schema)
        writer.write_table(pa.table({"probe": [1]}, schema=schema))
        writer.close()
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"compression '{options.compression}' rejects level {options.compression_level}: {exc}") from None


class PartFile:
    """A part file being written; `rows` counts records appended, written or still buffered."""

    def __init__(
        self, folder: Path, name: str, schema: pa.Schema, options: FileOptions, lock: DatasetLock, background: ThreadPoolExecutor | None = None
    ) -> None:
        self.path = folder / name
        self.temp_path = folder / f".{name}.inprogress"
        self.schema = schema
        self.opened_at = time.monotonic()
        self.appended_at = time.monotonic_ns()
        self.rows = 0
        self.buffered_bytes = 0
        self._options = options
        self._lock = lock
        self._buffer: list[pa.RecordBatch] = []
        self._buffered_rows = 0
        self._sink: pa.NativeFile | None = None
        self._writer: pq.ParquetWriter | None = None
        self._background = background
        self._pending: Future[None] | None = None
        """The sorted run being written on the `background` thread."""
        self._size = 0
        options.check_schema(schema)

    @property
    def size(self) -> int:
        """Bytes written to disk so far (buffered records, and a run still being written, not included)."""
        if self._pending is not None and self._pending.done():
            self.wait()
        if self._sink is not None and self._pending is None:
            self._size = int(self._sink.tell())
        return self._size

    def append(self, batch: pa.RecordBatch) -> None:
        """Buffer records (already fitted to `schema`); without `sort_by`, full row groups are written out."""
        self._buffer.append(batch)
        self.appended_at = time.monotonic_ns()
        self.rows += batch.num_rows
        self._buffered_rows += batch.num_rows
        self.buffered_bytes += batch.nbytes
        if self._options.sort_by:
            return
        if self.buffered_bytes >= self._options.group_bytes:
            self.flush()
        elif self._buffered_rows >= self._options.row_group_size:
            self.flush(whole_groups_only=True)

    def flush(self, whole_groups_only: bool = False) -> None:
        """Write buffered records as row groups of at most `row_group_size` (keeping a partial one if asked).

        With `sort_by`, every buffered record is written, as one sorted run.
        """
        if not self._buffer:
            return
        if self._options.sort_by:
            buffer, self._buffer, self._buffered_rows, self.buffered_bytes = self._buffer, [], 0, 0
            self.wait()
            writer = self._open_writer()
            if self._background is not None:
                self._pending = self._background.submit(self._options.write_run, writer, buffer, self.schema)
                return
            with self._io():
                self._options.write_run(writer, buffer, self.schema)
            return
        table = pa.Table.from_batches(self._buffer, schema=self.schema)
        group = self._options.row_group_size
        count = table.num_rows - (table.num_rows % group if whole_groups_only else 0)
        if count:  # here: `size` must see each row group at once, for `max_file_size`
            with self._io():
                self._open_writer().write_table(table.slice(0, count), row_group_size=group)
        rest = table.slice(count)
        self._buffer = rest.to_batches()
        self._buffered_rows = rest.num_rows
        self.buffered_bytes = rest.nbytes

    def wait(self) -> None:
        """Return once the run in flight (if any) is written; its OSError as WriteFailure."""
        pending, self._pending = self._pending, None
        if pending is not None:
            with self._io():
                pending.result()
            assert self._sink is not None
            self._size = int(self._sink.tell())

    def commit(self) -> int:
        """Write what is buffered, close, sync and rename to the final name; the file's size in bytes."""
        self.flush()
        self.wait()
        with self._io():
            self._open_writer().close()
            assert self._sink is not None
            size = int(self._sink.tell())
            self._sink.close()
            _sync(self.temp_path)
            with self._lock.shared():
                os.replace(self.temp_path, self.path)
        return size

    def discard(self) -> None:
        """Close without committing and delete the temporary file.

        Used after a failure, so closing may fail again (a full disk): that is expected and not reported.
        """
        self._buffer = []
        with contextlib.suppress(WriteFailure, pa.ArrowException):
            self.wait()
        with contextlib.suppress(OSError, pa.ArrowException):
            if self._writer is not None:
                self._writer.close()
        with contextlib.suppress(OSError, pa.ArrowException):
            if self._sink is not None:
                self._sink.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()

    def _open_writer(self) -> pq.ParquetWriter:
        if self._writer is None:
            with self._lock.shared():  # maintenance never swaps a folder while a file is being created in it
                self.temp_path.parent.mkdir(parents=True, exist_ok=True)
                self._sink = pa.OSFile(str(self.temp_path), "wb")
            self._writer = self._options.parquet_writer(self._sink, self.schema)
        return self._writer

    @contextlib.contextmanager
    def _io(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise WriteFailure(self.path, exc) from exc


def _sync(path: Path) -> None:
    """Flush a closed file's data to disk, so the rename never publishes a file the OS has not stored."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
