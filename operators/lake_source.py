"""The `lake` source: a dataset of the lake read back as records, pruned to a time range and filtered in DuckDB.

Partitions are the dataset's partition folders (`date=2015-05-17/hour=10`, or `.` for files at its top), so
several workers share a dataset. Folders whose `date`/`hour` lie wholly outside `since`…`until` are never
opened; the time range and `where` are applied by DuckDB while it reads. A partition reads its files one at a
time, in name order (part files are named by the time they were written); its position is the file being
read and the records of it already emitted, so a later run resumes there and picks up files added since.
A file that is not readable Parquet stops the source naming it, or with `on_corrupt: skip` is left out (counted
as `corrupt_files_skipped`, named in a warning); footers are checked only after DuckDB failed to read them, so a
healthy dataset pays nothing for it.
"""

from __future__ import annotations

import bisect
import difflib
import threading
import logging
import re
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from loglake.operators.lake_files import CorruptFileError, OnCorrupt, corrupt_files, corruption, parquet_files
from loglake.operators.sql import compile_expression
from loglake.operators.sql.session import quote, reason
from loglake.schemas.config import SourceConfig
from loglake.schemas.connectors import EndOfInput
from loglake.schemas.errors import ConfigError, TerminalError
from loglake.schemas.records import conform_core_columns
from loglake.schemas.registry import register_source
from loglake.schemas.stage import NodeContext

__all__ = ["LakeConfig", "LakeSource", "LakePartition", "in_time_range", "ROW_ID_COLUMNS", "SKIPPED_COUNTER"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TIME_KEYS = ("date", "hour")
_ROOT = "."
ROW_ID_COLUMNS = ("_lake_file", "_lake_row")
"""With `row_ids`: the Parquet file a record was read from and its row number there (from 0)."""
SKIPPED_COUNTER = "corrupt_files_skipped"
"""Counter of the files `on_corrupt: skip` left out."""
_warned: set[Path] = set()
"""Corrupt files warned about in this process: once each."""
_warned_lock = threading.Lock()
_CORRUPT_HINT = "set `on_corrupt: skip` on the lake source (replay: --on-corrupt skip) to read the other files, or move it out of the lake"


class LakeConfig(SourceConfig):
    """Read a dataset of the lake back as records: replays, backfills, re-deriving one dataset from another.

    Example:
        history: {type: lake, dataset: access, where: "response >= 500", since: 2015-05-17T00:00:00Z}
    """

    type: Literal["lake"]
    dataset: str | None = None
    """Dataset name: its folder under the lake; give this or `path`."""
    path: str | None = None
    """Dataset folder to read instead (relative to the pipeline file); give this or `dataset`."""
    where: str | None = None
    """SQL condition (DuckDB's dialect) a record must meet to be read, e.g. `response >= 500`; it may use the partition columns (`date`, `hour`)."""
    since: datetime | None = None
    """Only records whose `timestamp` is at or after this ISO-8601 time (no zone means UTC); partitions that end before it are not opened."""
    until: datetime | None = None
    """Only records whose `timestamp` is at or before this time; partitions that start after it are not opened."""
    batch_size: int = Field(default=10_000, ge=1)
    """Most records in one batch."""
    on_corrupt: OnCorrupt = "fail"
    """A file that is not readable Parquet (empty, truncated, not Parquet, a bad footer or page): `fail` stops the run naming it; `skip` leaves it out with a warning naming it, counted as `corrupt_files_skipped`."""

    @field_validator("dataset")
    @classmethod
    def _dataset_is_a_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(f"dataset name '{value}' must start with a letter or '_' and hold only letters, digits and '_'")
        return value

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _one_folder_and_an_ordered_range(self) -> LakeConfig:
        if (self.dataset is None) == (self.path is None):
            raise ValueError("give exactly one of 'dataset' (a dataset in the lake) and 'path' (a folder)")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(f"since ({self.since.isoformat()}) is after until ({self.until.isoformat()})")
        return self


def in_time_range(relative: Path, since: datetime | None, until: datetime | None) -> bool:
    """Whether a partition folder (`date=…[/hour=…]`) may hold records stamped between `since` and `until`
    (UTC); always True for a folder without `date=`."""
    keys = dict(part.split("=", 1) for part in relative.parts if "=" in part)
    try:
        folder: tuple[Any, ...] = (date.fromisoformat(keys["date"]),)
    except (KeyError, ValueError):
        return True
    if keys.get("hour", "").isdigit():
        folder += (int(keys["hour"]),)

    def key(moment: datetime) -> tuple[Any, ...]:
        return (moment.date(), moment.hour)[: len(folder)]

    return (since is None or key(since) <= folder) and (until is None or folder <= key(until))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@register_source(LakeConfig)
class LakeSource:
    """The dataset's partition folders that overlap the time range, each read by its own DuckDB cursor.

    Attributes:
        folder: The dataset folder.
        files: Partition name → its Parquet files (absolute, in reading order), after pruning.
    """

    def __init__(self, config: LakeConfig, ctx: NodeContext, row_ids: bool = False) -> None:
        self.config = config
        self.row_ids = row_ids
        self._ctx = ctx
        self.folder = self._find_folder()
        every = parquet_files(self.folder)
        self._time_keys = [key for key in _TIME_KEYS if every and any(part.startswith(f"{key}=") for part in every[0].relative_to(self.folder).parts)]
        self.files: dict[str, list[Path]] = {}
        for path in every:
            relative = path.parent.relative_to(self.folder)
            if in_time_range(relative, config.since, config.until):
                self.files.setdefault(relative.as_posix() if relative.parts else _ROOT, []).append(path)
        log.info("%s: %d of %d file(s) of %s in range, in %d partition(s)", ctx.node, sum(map(len, self.files.values())), len(every), self.folder, len(self.files))
        self._db = duckdb.connect(config={"autoinstall_known_extensions": False})
        self._db.execute("SET TimeZone = 'UTC'")
        self._db_lock = threading.Lock()
        columns = self._columns()
        if self.files:
            self._check_query(columns)

    def partitions(self) -> list[str]:
        """Partition folders relative to the dataset (`date=2015-05-17/hour=10`), sorted; `.` for top-level files."""
        return sorted(self.files)

    def open(self, partition: str, resume: Any | None) -> LakePartition:
        """Read one partition folder, from a position `LakePartition.position` returned earlier or from its first file."""
        if partition not in self.files:
            raise ValueError(f"{self._ctx.node}: '{partition}' is not one of this source's partitions")
        return LakePartition(self, partition, resume, self._ctx)

    def query(self, files: list[Path], offset: int = 0) -> str:
        """The SQL that reads `files` (their partition keys as columns for `where`, then left out), filtered."""
        listed = ", ".join(_literal(str(path)) for path in files)
        hour = ", hive_types = {'hour': INTEGER}" if "hour" in self._time_keys else ""
        left_out = [*self._time_keys, "file_row_number"] if self.row_ids else self._time_keys
        exclude = f" EXCLUDE ({', '.join(left_out)})" if left_out else ""
        file, row = ROW_ID_COLUMNS
        row_id = f", file_row_number AS {row}" if self.row_ids else ""
        row_options = f", filename = '{file}', file_row_number = true" if self.row_ids else ""
        conditions = [f"({self.config.where})"] if self.config.where else []
        if self.config.since is not None:
            conditions.append(f"timestamp >= TIMESTAMPTZ {_literal(self.config.since.isoformat())}")
        if self.config.until is not None:
            conditions.append(f"timestamp <= TIMESTAMPTZ {_literal(self.config.until.isoformat())}")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        tail = f" OFFSET {offset}" if offset else ""
        return f"SELECT *{exclude}{row_id} FROM read_parquet([{listed}], hive_partitioning = true, union_by_name = true{row_options}{hour}){where}{tail}"

    def report_corrupt(self, path: Path, problem: str, rows: int = 0) -> None:
        """A file found corrupt: CorruptFileError (`fail`), or a warning and a count (`skip`); `rows` of it were read."""
        if self.config.on_corrupt == "fail":
            raise CorruptFileError(path, problem, _CORRUPT_HINT, self._ctx.node)
        self._ctx.counters.add(SKIPPED_COUNTER)
        with _warned_lock:
            if path in _warned:  # a replay builds the source twice: to check the request, then to run it
                return
            _warned.add(path)
        after = f" after {rows:,} record(s)" if rows else ""
        log.warning("%s: skipped %s%s, not a readable Parquet file (%s)", self._ctx.node, path, after, problem)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection of its own (for one partition's thread) to this source's database."""
        with self._db_lock:
            return self._db.cursor()

    def expected_records(self) -> int:
        """How many records the source will emit (a DuckDB count over every file in range), for progress reports."""
        files = [path for paths in self.files.values() for path in paths]
        if not files:
            return 0
        try:
            row = self.cursor().execute(f"SELECT count(*) FROM ({self.query(files)})").fetchone()
        except duckdb.Error as exc:
            raise TerminalError(f"cannot count the records of {self.folder}: {reason(exc)}", self._ctx.node) from None
        return int(row[0]) if row else 0

    def _find_folder(self) -> Path:
        config, lake = self.config, self._ctx.lake
        if config.path is not None:
            folder = self._ctx.resolve(config.path)
            if not folder.is_dir():
                raise ConfigError(f"dataset folder '{config.path}' ({folder}) does not exist", field="path")
            return folder
        assert config.dataset is not None
        folder = lake / config.dataset
        if folder.is_dir():
            return folder
        names = sorted(p.name for p in lake.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))) if lake.is_dir() else []
        close = difflib.get_close_matches(config.dataset, names, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else f"; datasets: {', '.join(names)}" if names else " (it holds no datasets)"
        raise ConfigError(f"no dataset '{config.dataset}' in the lake folder {lake}{hint}", field="dataset")

    def _columns(self) -> list[str]:
        """The columns of the files in range (DuckDB reads every footer); corrupt files leave `files` or stop the source."""
        while files := [path for paths in self.files.values() for path in paths]:
            try:
                described = self.cursor().execute(f"DESCRIBE SELECT * FROM read_parquet([{', '.join(_literal(str(p)) for p in files)}], hive_partitioning = true, union_by_name = true)").fetchall()
            except duckdb.Error as exc:
                found = corrupt_files(files)
                if not found:
                    raise TerminalError(f"cannot read the files of {self.folder}: {reason(exc)}", self._ctx.node) from None
                for path, problem in found.items():
                    self.report_corrupt(path, problem)
                self.files = {name: kept for name, paths in self.files.items() if (kept := [path for path in paths if path not in found])}
                continue
            return [str(row[0]) for row in described]
        return []

    def _check_query(self, columns: list[str]) -> None:
        """Bad SQL in `where`, or columns the dataset lacks, as a ConfigError naming the field (before any read)."""
        files = [path for paths in self.files.values() for path in paths]
        if (self.config.since or self.config.until) and "timestamp" not in columns:
            raise ConfigError(f"the dataset {self.folder} has no 'timestamp' column to select a time range by", field="since" if self.config.since else "until")
        if self.config.where is None:
            return
        expression = compile_expression(self.config.where, "where", cast="BOOLEAN")
        known = {name.lower() for name in columns}
        for path in expression.columns:
            if path[0].lower() not in known:
                close = difflib.get_close_matches(path[0], columns, n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else f"; its columns: {', '.join(columns)}"
                raise ConfigError(f"the dataset has no column '{path[0]}'{hint}", field="where")
        try:
            self.cursor().execute(f"DESCRIBE {self.query(files)}")
            self.cursor().execute(f"{self.query(files[:1])} LIMIT 1").fetchall()  # constants cast at run time ('abc' as a number)
        except duckdb.Error as exc:
            if corruption(exc, files[0]) is None:  # a corrupt first file is for the read to report, per on_corrupt
                raise ConfigError(f"invalid SQL condition {quote(self.config.where)}: {reason(exc)}", field="where") from None


class LakePartition:
    """One partition folder: its files read one after another, in batches of at most `batch_size` records."""

    def __init__(self, source: LakeSource, name: str, resume: Any | None, ctx: NodeContext) -> None:
        self._source = source
        self._ctx = ctx
        self._files = source.files[name]
        self._index, self._rows = _resume_at(resume, [path.name for path in self._files], name, ctx.node)
        self._started = resume is not None
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self._reader: pa.RecordBatchReader | None = None

    def read(self) -> pa.RecordBatch | None:
        """The next batch; `EndOfInput` after the last file."""
        while self._index < len(self._files):
            try:
                batch = (self._reader or self._open_file()).read_next_batch()
            except StopIteration:
                self._next_file()
                continue
            except duckdb.Error as exc:
                self._unreadable(exc)
                continue
            self._rows += batch.num_rows
            if batch.num_rows:
                self._ctx.counters.add("records_in", batch.num_rows)
                return conform_core_columns(batch)
        raise EndOfInput

    def position(self) -> dict[str, Any]:
        """`{"file", "rows"}`: the file being read and its records emitted so far (`rows` null once it is read
        whole); `file` is null before the first read."""
        if self._index >= len(self._files):
            return {"file": self._files[-1].name, "rows": None}
        return {"file": self._files[self._index].name if self._started else None, "rows": self._rows}

    def close(self) -> None:
        """Drop the open query and the cursor."""
        self._reader = None
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None

    def _open_file(self) -> pa.RecordBatchReader:
        self._started = True
        if self._cursor is None:
            self._cursor = self._source.cursor()
        sql = self._source.query([self._files[self._index]], offset=self._rows)
        self._reader = self._cursor.sql(sql).to_arrow_reader(self._source.config.batch_size)
        return self._reader

    def _unreadable(self, exc: duckdb.Error) -> None:
        """The file being read failed: skip it when it is corrupt and `skip` says so, else TerminalError."""
        path = self._files[self._index]
        problem = corruption(exc, path)
        if problem is None:
            raise TerminalError(f"cannot read {path}: {reason(exc)}", self._ctx.node) from None
        self._source.report_corrupt(path, problem, self._rows)
        self._next_file()

    def _next_file(self) -> None:
        self._reader = None
        self._index += 1
        self._rows = 0


def _resume_at(resume: Any | None, names: list[str], partition: str, node: str) -> tuple[int, int]:
    """(file index, records of it to skip) for a saved position: files named before the saved one are done,
    and so is the saved one when its `rows` is null; files added since are read."""
    if resume is None:
        return 0, 0
    if not (isinstance(resume, dict) and isinstance(resume.get("file"), (str, type(None))) and isinstance(resume.get("rows"), (int, type(None)))):
        raise TerminalError(f"cannot resume {partition} from {resume!r}: not a lake position", node)
    saved, rows = resume["file"], resume["rows"]
    if saved is None:
        return 0, 0
    index = bisect.bisect_left(names, saved)
    if index < len(names) and names[index] == saved:
        return (index + 1, 0) if rows is None else (index, rows)
    return index, 0
