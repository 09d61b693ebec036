"""A lake dataset's files as readers see them, and the ones they cannot read.

Shared by the `lake` source and `loglake query`: the Parquet files of a dataset, hidden ones left out (`.`/`_`
names: files being written, partitions being dropped or swapped); whether a DuckDB error means a file is
corrupt or has vanished since it was listed; and a footer check that reads a file's last bytes and metadata
only, run when DuckDB has failed (so a healthy lake pays nothing for it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from loglake.operators.sql.session import reason
from loglake.schemas.errors import TerminalError

__all__ = ["OnCorrupt", "CorruptFileError", "parquet_paths", "iter_parquet_files", "parquet_files", "footer_problem", "corrupt_files", "named_file", "corruption", "data_problem"]

OnCorrupt = Literal["fail", "skip"]
"""What a reader does with a file that is not readable Parquet: leave it out with a warning, or stop there."""


class CorruptFileError(TerminalError):
    """A Parquet file of the lake that cannot be read: zero bytes, truncated, not Parquet, a bad footer or page.

    Attributes:
        path: The file.
        reason: What is wrong with it.
    """

    def __init__(self, path: Path, reason: str, hint: str, node: str | None = None) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path} is not a readable Parquet file ({reason}); {hint}", node)


def parquet_paths(folder: Path) -> Iterator[str]:
    """The paths of the `*.parquet` files under `folder`, in no order, hidden files and folders (`.`/`_` names) left out.

    As `os.walk` sees them (symbolic links to folders are not followed; a folder that vanishes or cannot be
    read is passed over) but faster: the folder entries' types are all it asks of the system. `loglake query`
    lists a dataset before every query that names it (169 hourly folders: ~2 ms).
    """
    pending = [os.fspath(folder)]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.name.startswith((".", "_")):
                        continue
                    if entry.is_dir():
                        if not entry.is_symlink():
                            pending.append(entry.path)
                    elif entry.name.endswith(".parquet"):
                        yield entry.path
        except OSError:
            continue


def iter_parquet_files(folder: Path) -> Iterator[Path]:
    """The `*.parquet` files under `folder`, in no order (see `parquet_paths`)."""
    return map(Path, parquet_paths(folder))


def parquet_files(folder: Path) -> list[Path]:
    """The `*.parquet` files under `folder` in path order, hidden files and folders left out."""
    return sorted(iter_parquet_files(folder))


def _clean(text: str) -> str:
    """The first line of an error message, without the control bytes a garbled footer puts in it."""
    line = text.strip().split("\n", 1)[0]
    return "".join(char for char in line if char.isprintable()).strip(" :")


def footer_problem(path: Path) -> str | None:
    """What is wrong with a file's Parquet footer (size, magic bytes, metadata), or None when it parses or the file
    cannot be opened at all (gone, not permitted: not corruption)."""
    try:
        pq.read_metadata(path)
    except pa.ArrowInvalid as exc:
        return _clean(str(exc)).split(". ", 1)[0]
    except OSError as exc:
        return None if exc.errno is not None else _clean(str(exc))
    return None


def corrupt_files(paths: Iterable[Path]) -> dict[Path, str]:
    """The files among `paths` whose footer is broken, with what is wrong (about 50 µs a healthy file)."""
    found = {path: footer_problem(path) for path in paths}
    return {path: problem for path, problem in found.items() if problem is not None}


def named_file(exc: BaseException, folders: Iterable[Path]) -> Path | None:
    """The first `.parquet` path under one of `folders` (absolute) that an error message names, if any (the
    message only: the query DuckDB echoes after it holds the view's glob)."""
    text = reason(exc)
    for folder in folders:
        found = re.search(re.escape(str(folder) + os.sep) + r"[^\"'\n]*?\.parquet", text)
        if found:
            return Path(found.group(0))
    return None


def corruption(exc: duckdb.Error, path: Path) -> str | None:
    """Why `path` is not readable Parquet, when `exc` (DuckDB failing while reading it) means that; None when it
    is about something else: the file vanished or cannot be opened, a condition failed on a value."""
    if not path.is_file():
        return None
    problem = footer_problem(path)
    if problem is not None:
        return problem
    named = str(path) in str(exc) and not isinstance(exc, duckdb.IOException)
    if named or type(exc) is duckdb.Error:  # the bare class: a decoding failure (thrift, pages) DuckDB did not classify
        return _clean(re.sub(rf"\s*[\"']?{re.escape(str(path))}[\"']?", "", reason(exc)))
    return None


def data_problem(con: duckdb.DuckDBPyConnection, path: Path) -> str | None:
    """Why `path` cannot be read whole (every value of every column decoded), or None: the slow check, for
    an error that named no file and files whose footers are sound."""
    try:
        con.execute("SELECT count(hash(COLUMNS(*))) FROM read_parquet(?)", [str(path)]).fetchall()
    except duckdb.Error as exc:
        return corruption(exc, path)
    return None
