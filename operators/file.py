"""The `file` source: log files named by paths and globs, read to their end or followed like `tail -F`.

Files whose name ends in `.gz` are decompressed as they are read; their positions (`offset`) count bytes of
the decompressed stream, and resuming one decompresses it again up to that offset. A compressed file is an
archive: a follower notices when its path names another file, but does not check it for truncation.
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import io
import logging
import os
import re
import time
import zlib
from collections.abc import Mapping
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from loglake.operators.file_follow import DISCOVERY_PREFIX, DiscoveryPartition, positions_by_path
from loglake.operators.lines import CHUNK_SIZE, LINE_FIELDS, LINE_TYPES, LineReader, LinesConfig
from loglake.schemas.connectors import EndOfInput
from loglake.schemas.errors import ConfigError, TerminalError
from loglake.schemas.registry import register_source
from loglake.schemas.stage import NodeContext
from loglake.schemas.units import Duration

__all__ = ["FileConfig", "FileSource", "FilePartition"]

log = logging.getLogger(__name__)

_GLOB_CHARS = re.compile(r"[*?[]")


class FileConfig(LinesConfig):
    """Read log lines from files; with `follow`, keep reading them as they grow, rotate or get truncated.

    Example:
        access: {type: file, paths: [logs/access.log, "logs/archive/**/*.log"], start_at: beginning}
    """

    type: Literal["file"]
    paths: list[str] = Field(min_length=1)
    """Files or globs (`**` spans folders); relative ones resolve against the pipeline file's folder; files ending in `.gz` are decompressed as they are read."""
    start_at: Literal["beginning", "end"] = "beginning"
    """Where to start in a file without a saved position: `beginning`, or `end` for lines written from now on."""
    follow: bool = False
    """Keep reading at the end of each file (surviving rotation and truncation) instead of ending; `--follow` overrides it."""
    poll_interval: Duration = Field(default="250ms", validate_default=True)
    """How often a follower at the end of a file checks it for new lines, rotation and truncation."""


@register_source(FileConfig)
class FileSource:
    """The files matched at start, one partition each (named by its absolute path); in follow mode also one
    discovery partition per glob, for files that appear later (see `file_follow`)."""

    def __init__(self, config: FileConfig, ctx: NodeContext) -> None:
        self._config = config
        self._ctx = ctx
        self._follow = config.follow if ctx.follow is None else ctx.follow
        self._paths = _expand_paths(config.paths, ctx, self._follow)
        globs = [os.path.normpath(ctx.resolve(p)) for p in config.paths if _GLOB_CHARS.search(p)] if self._follow else []
        self._globs = list(dict.fromkeys(globs))

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str]:
        """The lines' columns: `message`, `source`, `_line` and, for a cut line, `_truncated`."""
        return LINE_FIELDS

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The lines' columns' types (text, but `_line` int64 and `_truncated` bool)."""
        return dict(LINE_TYPES)

    def partitions(self) -> list[str]:
        """The matched files' absolute paths, sorted, then the discovery partitions in pattern order."""
        return [*self._paths, *(DISCOVERY_PREFIX + pattern for pattern in self._globs)]

    def open(self, partition: str, resume: Any | None) -> FilePartition | DiscoveryPartition:
        """Read one file, from a position `FilePartition.position` returned earlier or from `start_at`."""
        if partition.startswith(DISCOVERY_PREFIX) and partition[len(DISCOVERY_PREFIX):] in self._globs:
            return self._discovery(partition[len(DISCOVERY_PREFIX):], resume)
        if partition not in self._paths:
            raise ValueError(f"{self._ctx.node}: '{partition}' is not one of this source's files")
        return FilePartition(partition, self._config, self._ctx, self._follow, resume)

    def remap_positions(self, saved: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint's positions keyed by this run's partitions: a file found by discovery last time may
        have its own partition now, and a file named at start last time may be a discovery's now."""
        by_path = positions_by_path(saved)
        remapped: dict[str, Any] = {path: by_path[path] for path in self._paths if path in by_path}
        for pattern in self._globs:
            remapped[DISCOVERY_PREFIX + pattern] = {p: pos for p, pos in by_path.items() if p not in self._paths}
        return remapped

    def _discovery(self, pattern: str, resume: Any | None) -> DiscoveryPartition:
        earlier = self._globs[: self._globs.index(pattern)]
        at_start = set(self._paths)

        def claimed(path: str) -> bool:
            """Read elsewhere: a partition of its own, or an earlier pattern's discovery."""
            return path in at_start or any(fnmatch.fnmatchcase(path, other) for other in earlier)

        def open_file(path: str, position: Any) -> FilePartition:
            return FilePartition(path, self._config, self._ctx, True, position)

        interval = max(self._config.poll_interval.total_seconds() * 8, 1.0)
        saved = resume if isinstance(resume, dict) else None
        return DiscoveryPartition(pattern, claimed, open_file, saved, interval, self._ctx.node)


class FilePartition:
    """One file, read in batches of lines; followed across rotation and truncation when `follow` is on."""

    def __init__(self, path: str, config: FileConfig, ctx: NodeContext, follow: bool, resume: Any | None) -> None:
        self._path = path
        self._config = config
        self._node = ctx.node
        self._follow = follow
        self._reader = LineReader(config, ctx, path)
        self._compressed = path.endswith(".gz")
        self._file: io.FileIO | gzip.GzipFile | None = None
        self._inode: int | None = None
        self._device: int | None = None
        self._read_offset = 0  # bytes of the file read into the reader
        self._rotated = False  # the path names a new file; finish the old one first
        self._idle_until = 0.0
        self._at_eof = False  # the last read reached the end of the file
        self._ended = False
        self._start(resume)

    def read(self) -> pa.RecordBatch | None:
        """The next batch of lines; None while a follower waits for more; `EndOfInput` at the end otherwise."""
        if self._ended:
            raise EndOfInput
        if self._follow and time.monotonic() < self._idle_until:
            return None
        batch = self._read_lines()
        if batch is not None or not self._at_eof:
            return batch
        if self._follow:
            return self._follow_up()
        batch = self._reader.take(final=True)
        if batch is None:
            self._ended = True
            log.info("%s: read %s to its end (%d lines)", self._node, self._path, self._reader.line)
            raise EndOfInput
        return batch

    def position(self) -> dict[str, int | None]:
        """`{"inode", "offset", "line"}`: the file, the byte offset of the next unread line (in the decompressed
        stream, for a `.gz` file), the last line's number."""
        return {"inode": self._inode, "offset": self._reader.offset, "line": self._reader.line}

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _start(self, resume: Any | None) -> None:
        saved = _parse_position(resume, self._path, self._node)
        if not self._open_file():
            void = " (its saved position is void)" if saved is not None and saved[0] is not None else ""
            log.info("%s: waiting for %s to appear%s", self._node, self._path, void)
            return
        if saved is not None:
            self._resume(*saved)
        elif self._config.start_at == "end":
            self._skip_to_end()
        log.info("%s: reading %s from line %d", self._node, self._path, self._reader.line + 1)

    def _open_file(self) -> bool:
        """Open the path from its first byte; False when it does not exist and a follower may wait for it."""
        try:
            handle = gzip.open(self._path, "rb") if self._compressed else io.FileIO(self._path, "rb")
        except FileNotFoundError:
            if self._follow:
                return False
            raise TerminalError(f"cannot open {self._path}: the file does not exist", self._node) from None
        except OSError as exc:
            raise TerminalError(f"cannot open {self._path}: {exc.strerror}", self._node) from None
        stat = os.fstat(handle.fileno())
        self._file, self._inode, self._device = handle, stat.st_ino, stat.st_dev
        self._seek(0, 0)
        return True

    def _seek(self, offset: int, line: int) -> None:
        assert self._file is not None
        self._file.seek(offset)
        self._read_offset = offset
        self._reader.reset(offset, line)

    def _resume(self, inode: int | None, offset: int, line: int) -> None:
        if inode is None:
            return  # saved before the file existed: all of it is new
        if inode == self._inode:
            size = self._size_up_to(offset)
            if offset <= size:
                self._seek(offset, line)
                return
            self._seek(0, 0)
            why = f"it shrank to {size:,} bytes"
        else:
            why = f"it is another file now (inode {inode} → {self._inode})"
        log.warning(
            "%s: %s changed while stopped (%s); the saved position (line %d, byte %d) is void, reading it from the start",
            self._node, self._path, why, line, offset,
        )

    def _size_up_to(self, offset: int) -> int:
        """The file's size in bytes; for a `.gz` file, of the decompressed stream, counted no further than `offset`."""
        assert self._file is not None
        if self._compressed:
            return self._file.seek(offset)
        return os.fstat(self._file.fileno()).st_size

    def _skip_to_end(self) -> None:
        """Start after the last complete line, counting the lines skipped so `_line` stays the line in the file."""
        assert self._file is not None
        lines = boundary = offset = 0
        while chunk := self._file.read(CHUNK_SIZE):
            newlines = chunk.count(b"\n")
            if newlines:
                lines += newlines
                boundary = offset + chunk.rfind(b"\n") + 1
            offset += len(chunk)
        self._seek(boundary, lines)

    def _read_lines(self) -> pa.RecordBatch | None:
        """Read until a batch is full or the file ends (at most about a batch of bytes), then take a batch."""
        self._at_eof = self._file is None
        budget = max(self._config.batch_bytes, CHUNK_SIZE)
        while self._file is not None and self._reader.wants_more and budget > 0:
            try:
                chunk = self._file.read(CHUNK_SIZE)
            except (OSError, EOFError, zlib.error) as exc:
                raise TerminalError(f"cannot read {self._path}: {_read_problem(exc)}", self._node) from None
            self._at_eof = not chunk
            if self._at_eof:
                break
            self._read_offset += len(chunk)
            budget -= len(chunk)
            self._reader.feed(chunk)
        return self._reader.take()

    def _follow_up(self) -> pa.RecordBatch | None:
        """At the end of the data: finish a rotated file, open a file that appeared, or notice a change."""
        if self._rotated:
            return self._finish_rotated()
        if self._file is None:
            if self._open_file():
                log.info("%s: %s appeared; reading it from the start", self._node, self._path)
                return None
        elif self._check_rotation() or self._check_truncation():
            return None
        self._idle_until = time.monotonic() + self._config.poll_interval.total_seconds()
        return None

    def _check_rotation(self) -> bool:
        """Whether the path now names another file (the open one keeps being read to its end first)."""
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            return False  # moved away and not replaced yet: keep following the open file
        self._rotated = (stat.st_ino, stat.st_dev) != (self._inode, self._device)
        return self._rotated

    def _check_truncation(self) -> bool:
        """Whether the open file is now shorter than what was read; if so, read it again from the start.

        A compressed file is never checked: its size on disk is not comparable with the bytes read from it.
        """
        assert self._file is not None
        if self._compressed:
            return False
        size = os.fstat(self._file.fileno()).st_size
        if size >= self._read_offset:
            return False
        log.warning(
            "%s: %s was truncated to %d bytes after line %d (byte %d had been read); reading it from the start",
            self._node, self._path, size, self._reader.line, self._read_offset,
        )
        self._seek(0, 0)
        return True

    def _finish_rotated(self) -> pa.RecordBatch | None:
        """The old file is read to its end: emit its last line even without a newline, then switch to the new one."""
        assert self._file is not None
        batch = self._reader.take(final=True)
        old_inode, old_lines = self._inode, self._reader.line
        self._file.close()
        self._file, self._inode, self._device, self._rotated = None, None, None, False
        self._reader.reset()
        opened = self._open_file()
        log.info(
            "%s: %s was rotated; read the old file (inode %s) to its end at line %d, %s",
            self._node, self._path, old_inode, old_lines,
            f"reading the new one (inode {self._inode}) from the start" if opened else "waiting for the new one",
        )
        return batch


def _read_problem(exc: BaseException) -> str:
    """Why a read failed, for a message: the OS's reason, or what is wrong with a compressed file."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, EOFError):
        return "the compressed file ends early (is it still being written?)"
    return f"not a valid gzip file ({exc})"


def _parse_position(resume: Any | None, path: str, node: str) -> tuple[int | None, int, int] | None:
    """A saved position as (inode, offset, line), or None when there is none."""
    if resume is None:
        return None
    ok = (
        isinstance(resume, dict)
        and isinstance(resume.get("inode"), (int, type(None)))
        and all(isinstance(resume.get(key), int) and resume[key] >= 0 for key in ("offset", "line"))
    )
    if not ok:
        raise TerminalError(f"cannot resume {path} from {resume!r}: not a file position", node)
    return resume["inode"], resume["offset"], resume["line"]


def _expand_paths(patterns: list[str], ctx: NodeContext, follow: bool) -> list[str]:
    """The sorted, distinct files the patterns name; a ConfigError listing every pattern that names none."""
    found: set[str] = set()
    problems: list[str] = []
    for pattern in patterns:
        resolved = os.path.normpath(ctx.resolve(pattern))
        expand = _expand_glob if _GLOB_CHARS.search(pattern) else _expand_literal
        files, problem = expand(pattern, resolved, follow)
        found.update(files)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise ConfigError("; ".join(problems), field="paths")
    return sorted(found)


def _expand_glob(pattern: str, resolved: str, follow: bool) -> tuple[list[str], str | None]:
    files = [os.path.normpath(match) for match in glob.glob(resolved, recursive=True) if os.path.isfile(match)]
    if not files:
        return [], None if follow else f"no file matches {_quoted(pattern, resolved)}"  # a follower waits for them
    unreadable = [name for name in files if not os.access(name, os.R_OK)]
    if unreadable:
        return [], f"cannot read '{unreadable[0]}' (matched by '{pattern}'): permission denied"
    return files, None


def _expand_literal(pattern: str, resolved: str, follow: bool) -> tuple[list[str], str | None]:
    if not os.path.exists(resolved):
        return ([resolved], None) if follow else ([], f"file {_quoted(pattern, resolved)} does not exist")
    if os.path.isdir(resolved):
        return [], f"{_quoted(pattern, resolved)} is a directory; name its files, e.g. '{pattern.rstrip('/')}/*.log'"
    if not os.access(resolved, os.R_OK):
        return [], f"cannot read {_quoted(pattern, resolved)}: permission denied"
    return [resolved], None


def _quoted(pattern: str, resolved: str) -> str:
    """`'logs/a.log' (/srv/pipe/logs/a.log)`, or just the quoted path when it was written absolute."""
    return f"'{pattern}'" if pattern == resolved else f"'{pattern}' ({resolved})"
