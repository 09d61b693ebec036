"""Following the files a glob comes to match after a follow-mode `file` source started (daily logs, new pods).

The files a source's patterns match at start are partitions of their own. In follow mode each glob
pattern also gets a discovery partition, which looks for new matches every few seconds and follows each
new file from its first line. Its position is `{path: file position}`, so a restart resumes those files too.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from loglake.schemas.connectors import SourcePartition

__all__ = ["DISCOVERY_PREFIX", "FROM_START", "DiscoveryPartition", "positions_by_path"]

log = logging.getLogger(__name__)

DISCOVERY_PREFIX = "discover:"
"""Partition names of discovery partitions: the prefix and the absolute glob pattern."""

FROM_START: dict[str, Any] = {"inode": None, "offset": 0, "line": 0}
"""A file position that reads a file from its first line whatever `start_at` says."""

OpenFile = Callable[[str, Any], SourcePartition]


def positions_by_path(saved: dict[str, Any]) -> dict[str, Any]:
    """One position per file from a checkpoint, whether a file had its own partition or a discovery one."""
    by_path: dict[str, Any] = {}
    for key, value in saved.items():
        if key.startswith(DISCOVERY_PREFIX) and isinstance(value, dict):
            by_path.update(value)
        else:
            by_path[key] = value
    return by_path


class DiscoveryPartition:
    """Finds files that newly match one glob and reads them, round robin, as one partition."""

    def __init__(
        self,
        pattern: str,
        claimed: Callable[[str], bool],
        open_file: OpenFile,
        resume: dict[str, Any] | None,
        interval: float,
        node: str,
    ) -> None:
        self._pattern = pattern
        self._claimed = claimed
        self._open_file = open_file
        self._saved = dict(resume or {})
        self._interval = interval
        self._node = node
        self._readers: dict[str, SourcePartition] = {}
        self._next_scan = 0.0
        self._turn = 0

    def read(self) -> pa.RecordBatch | None:
        """The next batch of any followed file, or None while all of them wait."""
        now = time.monotonic()
        if now >= self._next_scan:
            self._next_scan = now + self._interval
            self._scan()
        readers = list(self._readers.values())
        for step in range(len(readers)):
            batch = readers[(self._turn + step) % len(readers)].read()
            if batch is not None:
                self._turn = (self._turn + step + 1) % len(readers)
                return batch
        return None

    def position(self) -> dict[str, Any]:
        """`{path: file position}` of every file found so far."""
        return {path: reader.position() for path, reader in self._readers.items()}

    def close(self) -> None:
        """Close every followed file."""
        for reader in self._readers.values():
            reader.close()

    def _scan(self) -> None:
        for path in sorted(glob.glob(self._pattern, recursive=True)):
            path = os.path.normpath(path)
            if path in self._readers or self._claimed(path) or not os.path.isfile(path):
                continue
            resumed = path in self._saved
            self._readers[path] = self._open_file(path, self._saved.get(path, FROM_START))
            log.info("%s: following %s, %s (it matches %s)", self._node, path, "resumed" if resumed else "a new file", self._pattern)
