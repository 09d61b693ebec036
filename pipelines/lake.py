"""The lake as DuckDB sees it: one view per dataset over its Hive-partitioned Parquet files.

A view reads the files in the dataset's folder layout (`date=…/hour=…/*.parquet`; hidden files and folders,
such as a partition being dropped or swapped, are left out), and files written later appear:

- `LakeConnection` (what `loglake query` uses) makes each view a list of files, and lists a dataset's folders
  again before each query that names it, making the view again when its files changed. Listing 169 hourly
  folders in Python takes ~2 ms, where a glob in the view costs DuckDB ~14 ms of every query (it lists and
  matches every folder at each bind): a warm query of one client over a week of 10M records drops from ~120
  to ~80 ms (benchmarks/nginx_queries.py).
- `open_lake` returns a plain DuckDB connection, whose views must stay fresh on their own: they glob the
  folders, and DuckDB lists them at each query.

DuckDB reads every footer of a dataset when it binds its view (`union_by_name`), so a corrupt file fails every
query of that dataset; `on_corrupt` says what then happens:

- `fail` (the default, as Spark's `ignoreCorruptFiles` is off by default): stop with an error naming the file
  and how to leave it out. A query that quietly drops records gives wrong counts that nobody notices.
- `skip`: warn once naming the file and leave it out; the dataset's view becomes a list of its other files.

Corrupt files are looked for only when DuckDB has failed, so a healthy lake costs nothing more to query.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from loglake.operators.lake_files import (
    CorruptFileError,
    OnCorrupt,
    corrupt_files,
    corruption,
    data_problem,
    iter_parquet_files,
    named_file,
    parquet_paths,
)
from loglake.pipelines.spec import PipelineSpec, load_pipeline
from loglake.schemas.stage import NodeContext

__all__ = ["discover_datasets", "pipeline_datasets", "find_datasets", "connect", "open_lake", "LakeConnection", "QueryResult", "CORRUPT_HINT"]

log = logging.getLogger(__name__)

T = TypeVar("T")

CORRUPT_HINT = 'leave it out with `loglake query --on-corrupt skip` (Python: on_corrupt="skip"), or move it out of the lake'
"""How to get past a corrupt file, said after its name."""
_NOT_FOUND = ("No such file or directory", "No files found that match")
"""What DuckDB says of a file listed but gone when opened."""
_RETRY_PAUSE = 0.05
"""Seconds before running a query again after a file vanished, times the attempt number."""


def _has_parquet(folder: Path) -> bool:
    return next(iter_parquet_files(folder), None) is not None


def discover_datasets(lake_dir: Path) -> dict[str, Path]:
    """Every folder directly under the lake that holds Parquet files; `_`/`.` folders (checkpoints) are skipped."""
    if not lake_dir.is_dir():
        return {}
    return {
        child.name: child
        for child in sorted(lake_dir.iterdir())
        if child.is_dir() and not child.name.startswith(("_", ".")) and _has_parquet(child)
    }


def pipeline_datasets(spec: PipelineSpec) -> dict[str, Path]:
    """The datasets a pipeline's Parquet sinks write (name → folder), whether or not they hold data yet."""
    datasets: dict[str, Path] = {}
    for node in spec.of_kind("sink"):
        ctx = NodeContext(node=node.name, base_dir=spec.base_dir, lake_dir=spec.lake_dir)
        sink = node.registration.factory(node.config, ctx)
        if hasattr(sink, "dataset_dir") and hasattr(sink, "dataset_name"):
            datasets[sink.dataset_name] = Path(sink.dataset_dir)
    return datasets


def find_datasets(lake: str | Path | None = None, pipeline: str | Path | None = None) -> dict[str, Path]:
    """Datasets by name: those in the pipeline's lake and its sinks, then those in `lake` (which win)."""
    datasets: dict[str, Path] = {}
    if pipeline is not None:
        spec = load_pipeline(pipeline)
        datasets.update(discover_datasets(spec.lake_dir))
        datasets.update(pipeline_datasets(spec))
    if lake is not None:
        datasets.update(discover_datasets(Path(lake)))
    return datasets


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class QueryResult:
    """A query's column names and rows."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def _connect(database: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that caches Parquet footers between queries.

    DuckDB checks each cached file's modification time (and compaction writes new names), so the cache never
    serves a rewritten file's old footer; a warm query over a 169-file, 10M-row dataset drops from ~126 to
    ~38 ms (benchmarks/nginx_queries.py). Nothing is downloaded: a build without the cache simply goes without.
    """
    try:
        return duckdb.connect(database, config={"autoinstall_known_extensions": False, "parquet_metadata_cache": True})
    except duckdb.Error:
        return duckdb.connect(database, config={"autoinstall_known_extensions": False})


class LakeConnection:
    """DuckDB over the lake, for queries that keep working while the lake changes under them.

    `fetch` and `run` run a query again when DuckDB failed on a file of a dataset that vanished between listing
    and reading (a partition swapped by `loglake compact` or dropped by retention), up to `retries` times, and
    when a corrupt file was left out (`skip`). A dataset whose view cannot be made because of a corrupt file
    (`fail`) fails only the queries that use it. Views are lists of files, listed again before each query that
    names their dataset (before every query, when it names none: it may read one through a view of its own);
    with `globs`, views glob the folders instead (see the module docstring), but where a file was left out.

    >>> lake = LakeConnection.open(pipeline="examples/app-json/pipeline.yaml", on_corrupt="skip")
    >>> lake.fetch("SELECT level, count(*) FROM app GROUP BY 1").rows

    Attributes:
        connection: The DuckDB connection, one view per dataset.
        skipped: Corrupt files left out so far, with what is wrong with each.
        unavailable: Datasets without a view because of a corrupt file (`fail`), with the error to raise.
    """

    def __init__(
        self, datasets: dict[str, Path], on_corrupt: OnCorrupt = "fail", retries: int = 3, database: str = ":memory:", globs: bool = False
    ) -> None:
        self.connection = _connect(database)
        self.on_corrupt = on_corrupt
        self.retries = retries
        self.skipped: dict[Path, str] = {}
        self.unavailable: dict[str, CorruptFileError] = {}
        self._folders = {name: folder.resolve() for name, folder in datasets.items() if _has_parquet(folder)}
        self._globs = globs
        self._views: dict[str, list[str] | None] = {}
        """The datasets whose view is made: the files it lists, or None where it globs (`globs`, no file left out)."""
        self._schemas: dict[str, dict[str, int]] = {}
        """For the datasets whose view is a list: each file's Parquet schema, as a number (see `_one_schema`)."""
        self._shapes: dict[str, int] = {}
        """Each distinct schema text seen, numbered: the numbers `_schemas` holds."""
        self._queried: set[str] = set()
        """Datasets queried before: their schemas are checked when their view is next made."""
        self._unchecked: set[str] = set()
        """Datasets whose view is a list with `union_by_name`, their schemas not checked."""
        for name in self._folders:
            try:
                self._guarded(functools.partial(self._create_view, name), [name])
            except CorruptFileError as exc:
                self.unavailable[name] = exc

    @classmethod
    def open(cls, lake: str | Path | None = None, pipeline: str | Path | None = None, on_corrupt: OnCorrupt = "fail") -> LakeConnection:
        """Over a lake folder or the datasets a pipeline file writes (see `find_datasets`)."""
        return cls(find_datasets(lake, pipeline), on_corrupt)

    def views(self) -> list[str]:
        """The datasets that can be queried (those with a view)."""
        return [str(row[0]) for row in self.connection.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]

    def fetch(self, sql: str) -> QueryResult | None:
        """Run `sql`: its columns and rows (None for a statement without a result)."""
        return self.run(sql, lambda relation: QueryResult(list(relation.columns), relation.fetchall()))

    def run(self, sql: str, read: Callable[[duckdb.DuckDBPyRelation], T]) -> T | None:
        """Run `sql` and `read` its result; CorruptFileError for a corrupt file under `fail`, DuckDB's error for
        anything else (a file still missing after `retries` runs)."""
        names = self._referenced(sql)

        def attempt() -> T | None:
            self._refresh(names)
            relation = self.connection.sql(sql)
            return None if relation is None else read(relation)

        return self._guarded(attempt, names)

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.connection.close()

    def _referenced(self, sql: str) -> list[str]:
        """The datasets whose name `sql` holds as a word (DuckDB's `get_table_names` sees through views)."""
        return [name for name in self._folders if re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", sql, re.IGNORECASE)]

    def _guarded(self, action: Callable[[], T], names: list[str]) -> T:
        """`action`, run again after a file of a dataset vanished or a corrupt one was left out."""
        vanished = 0
        while True:
            try:
                return action()
            except duckdb.Error as exc:
                found = self._corrupt(exc, names or list(self._folders))
                if found:
                    self._leave_out(found)
                    continue
                missing = self._vanished(exc)
                if missing is None or vanished == self.retries:
                    raise
                vanished += 1
                log.info("%s vanished while a query ran (compacted or dropped?); running it again (%d of %d)", missing, vanished, self.retries)
                time.sleep(_RETRY_PAUSE * vanished)

    def _vanished(self, exc: duckdb.Error) -> Path | None:
        """The file of a dataset that `exc` says is not there (or that is gone now), if it names one."""
        path = named_file(exc, self._folders.values())
        if path is None or not isinstance(exc, duckdb.IOException):
            return None
        return path if not path.exists() or any(text in str(exc) for text in _NOT_FOUND) else None

    def _corrupt(self, exc: duckdb.Error, names: list[str]) -> dict[Path, str]:
        """The corrupt files `exc` is about: the file it names, or for a decoding error that names none, the
        files of `names` with a broken footer, else the first that cannot be read whole."""
        path = named_file(exc, self._folders.values())
        if path is not None:
            problem = corruption(exc, path)
            return {path: problem} if problem is not None and path not in self.skipped else {}
        if type(exc) is not duckdb.Error:
            return {}
        files = [Path(path) for name in names for path in self._files(name)]
        found = corrupt_files(files)
        if found:
            return found
        log.info("looking for the file DuckDB cannot decode among %d file(s) of %s", len(files), ", ".join(names))
        for path in files:
            problem = data_problem(self.connection, path)
            if problem is not None:
                return {path: problem}
        return {}

    def _leave_out(self, found: dict[Path, str]) -> None:
        """Under `fail`, CorruptFileError for the first file; under `skip`, warn and take them out of their views."""
        path, problem = next(iter(found.items()))
        if self.on_corrupt == "fail":
            raise CorruptFileError(path, problem, CORRUPT_HINT) from None
        for path, problem in found.items():
            name = next(name for name, folder in self._folders.items() if path.is_relative_to(folder))
            log.warning("%s: skipped %s, not a readable Parquet file (%s); its records are left out", name, path, problem)
            self.skipped[path] = problem
            self._views.pop(name, None)

    def _refresh(self, names: list[str]) -> None:
        """Make again the views that are out of date: those a corrupt file was just left out of, and those of
        `names` (of every dataset when the query names none: it may read one through a view of its own) that are
        lists of files with files added or gone since, or missing for a corrupt file (moved away since?), or
        queried before without their schemas checked (see `_one_schema`)."""
        targets = set(names or self._folders)
        for name in self._folders:
            if name not in self._views and name not in self.unavailable:
                self._create_view(name)
            elif name in targets:
                listed = self._views.get(name)
                files = self._files(name) if listed is not None else None  # listed once, and the view made of it
                if (
                    name in self.unavailable
                    or (files is not None and files != listed)
                    or (name in self._queried and name in self._unchecked)
                ):
                    self._create_view(name, files)
        self._queried |= targets

    def _files(self, name: str) -> list[str]:
        """The dataset's files as its view reads them: those in its folder layout (see `_in_layout`), corrupt ones
        left out, in path order."""
        files = _in_layout(self._folders[name], sorted(parquet_paths(self._folders[name])))
        return [path for path in files if Path(path) not in self.skipped] if self.skipped else files

    def _create_view(self, name: str, files: list[str] | None = None) -> None:
        """The dataset's view, over a list of the files it holds now (`files`, if just listed) or over its layout's
        glob (dropped when it holds no file)."""
        folder = self._folders[name]
        files = self._files(name) if files is None else files
        self._unchecked.discard(name)
        self._views[name] = files
        if not files:
            self.connection.execute(f"DROP VIEW IF EXISTS {_quote_identifier(name)}")
            return
        layout = Path(files[0]).relative_to(folder).parts[:-1]
        union = "true"
        if self._globs and not any(path.is_relative_to(folder) for path in self.skipped):
            levels = [f"{part.split('=', 1)[0]}=*" if "=" in part else "[!._]*" for part in layout]
            source = _quote_literal(str(folder.joinpath(*levels, "[!._]*.parquet")))
            self._views[name] = None
        else:
            source = "[" + ", ".join(_quote_literal(path) for path in files) + "]"
            if name not in self._queried:
                self._unchecked.add(name)  # a single query (`loglake query`) would not win back the check's time
            elif self._one_schema(name, files):
                union = "false"
        # `hour=09` would read as text (leading zero); the lake's hours are integers.
        hive_types = ", hive_types = {'hour': INTEGER}" if any(part.startswith("hour=") for part in layout) else ""
        self.connection.execute(
            f"CREATE OR REPLACE VIEW {_quote_identifier(name)} AS "
            f"SELECT * FROM read_parquet({source}, hive_partitioning = true, union_by_name = {union}{hive_types})"
        )
        self.unavailable.pop(name, None)

    def _one_schema(self, name: str, files: list[str]) -> bool:
        """Whether a dataset's files share one Parquet schema, so that its view needs no `union_by_name`.

        Matching columns by name costs DuckDB ~10 ms at every bind of a 169-file view, though the pipeline
        writes a dataset's files with one schema until its records change shape. Each file's schema is read
        once (from its footer, which DuckDB then keeps for the queries: `parquet_metadata_cache`).
        """
        known = self._schemas.get(name, {})
        new = [path for path in files if path not in known]
        if new:
            rows = self.connection.execute(_FILE_SCHEMAS, [new]).fetchall()
            known = {**known, **{str(path): self._shapes.setdefault(str(shape), len(self._shapes)) for path, shape in rows}}
        self._schemas[name] = known = {path: known[path] for path in files if path in known}
        return len(known) == len(files) and len(set(known.values())) == 1


_FILE_SCHEMAS = (
    "SELECT file_name, list((name, type, type_length, repetition_type, num_children, converted_type, scale, precision,"
    " logical_type) ORDER BY column_id)::VARCHAR FROM parquet_schema(?) GROUP BY file_name"
)
"""Each file's Parquet schema as text: its elements (columns, and the groups of nested ones) in order."""


def _in_layout(folder: Path, files: list[str]) -> list[str]:
    """The files whose folders below `folder` follow the first file's (`date=…/hour=…`: the same depth and keys).

    A dataset whose `partition_by` changed holds both layouts; its view reads the first (DuckDB's Hive
    partitioning reads one), as a glob of it would.
    """
    if not files:
        return files
    root = len(os.fspath(folder).rstrip(os.sep)) + 1
    first = files[0][root:].split(os.sep)[:-1]
    keys = [part.split("=", 1)[0] + "=" if "=" in part else None for part in first]

    def fits(path: str) -> bool:
        parts = path[root:].split(os.sep)[:-1]
        return len(parts) == len(keys) and all(key is None or part.startswith(key) for key, part in zip(keys, parts))

    return [path for path in files if fits(path)]


def connect(datasets: dict[str, Path], database: str = ":memory:", on_corrupt: OnCorrupt = "fail") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per dataset that has files (partition pruning via hive_partitioning).

    Each view globs its dataset's folders, so DuckDB lists them at every query and sees files written since.
    A corrupt file raises CorruptFileError (`fail`) or is left out with a warning (`skip`); a dataset with a
    file left out is a view over the files it held when connecting (`LakeConnection` lists them again).
    """
    lake = LakeConnection(datasets, on_corrupt, database=database, globs=True)
    if lake.unavailable:
        raise next(iter(lake.unavailable.values()))
    return lake.connection


def open_lake(lake: str | Path | None = None, pipeline: str | Path | None = None, on_corrupt: OnCorrupt = "fail") -> duckdb.DuckDBPyConnection:
    """The Python API: a DuckDB connection over a lake folder or over the datasets a pipeline file writes.

    `on_corrupt="fail"` (default) raises CorruptFileError naming a file that is not readable Parquet;
    `"skip"` leaves it out with a warning. `LakeConnection.open` also runs a query again when a file
    vanishes under it (a partition compacted or dropped) and finds corrupt files as queries meet them.

    >>> con = open_lake(pipeline="examples/app-json/pipeline.yaml")
    >>> con.sql("SELECT level, count(*) FROM app GROUP BY 1").fetchall()
    """
    return connect(find_datasets(lake, pipeline), on_corrupt=on_corrupt)
