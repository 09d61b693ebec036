"""The dataset lock: writers share it while they create or publish a file, maintenance holds it alone.

Compaction, `replay --rebuild` and retention replace or remove whole partition folders. A writer that
created its hidden in-progress file in a folder just before the folder is swapped away would publish its
file into the old copy, which is then deleted. So a writer holds the lock shared while it creates a file and
while it renames it into place (two short moments per file), and maintenance holds it exclusively while it
checks a folder has no file in progress and swaps it. The lock is `flock` on `<dataset>/.loglake.lock`:
it serialises processes on one machine (or one POSIX filesystem), not writers on different hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["DatasetLock", "LOCK_NAME"]

LOCK_NAME = ".loglake.lock"


class DatasetLock:
    """A dataset's lock; each hold opens the lock file anew (microseconds, a few times per Parquet file)."""

    def __init__(self, dataset_dir: Path) -> None:
        self.path = dataset_dir / LOCK_NAME

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Held by a writer while it creates or publishes a file; many writers hold it at once."""
        with self._held(fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held by maintenance while it swaps or removes partition folders; waits for writers to let go."""
        with self._held(fcntl.LOCK_EX):
            yield

    @contextlib.contextmanager
    def _held(self, mode: int) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing the handle releases the lock
