"""Replacing and removing whole partition folders of a dataset so that readers never see half of a change.

Readers (DuckDB's `read_parquet('<dataset>/**/*.parquet')`) list files, then open them. Replacing several
files one by one can therefore show a query some rows twice or not at all. Instead, the new content of a
partition is built in a staging folder beside the dataset and exchanged with the live folder in one
`renameat2(RENAME_EXCHANGE)`: a listing sees the old files or the new ones, never a mix. A query that listed
the old files and opens one after the swap fails on the missing file (and `loglake query` retries it); it
never returns wrong rows. Where the kernel or filesystem cannot exchange (not Linux, some network
filesystems), the swap is two renames and readers may miss the partition for that instant (logged).

Every swap happens under the dataset's exclusive lock after checking that no writer has a file in progress
in the folder (writers create and publish files under the shared lock).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import uuid
from pathlib import Path

__all__ = ["leaf_partitions", "staging_folder", "exchange_folders", "has_file_in_progress", "install_partition", "remove_partition", "prune_empty_parents", "discard"]

log = logging.getLogger(__name__)

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
_warned_no_exchange = False


def leaf_partitions(dataset: Path) -> list[Path]:
    """Folders of `dataset` that hold Parquet files directly, relative to it (`.` for files at its top);
    hidden folders are left out."""
    leaves = {path.parent.relative_to(dataset) for path in dataset.rglob("*.parquet") if path.is_file()}
    return sorted(leaf for leaf in leaves if not any(part.startswith(".") for part in leaf.parts))


def staging_folder(dataset: Path, purpose: str, create: bool = True) -> Path:
    """A new folder beside the dataset (same filesystem, outside its `**` glob) to build content in."""
    folder = dataset.parent / f".{dataset.name}.staging" / f"{purpose}-{uuid.uuid4().hex[:12]}"
    if create:
        folder.mkdir(parents=True)
    return folder


def exchange_folders(first: Path, second: Path) -> None:
    """Swap two folders' names atomically (both must exist); falls back to two renames where unsupported."""
    global _warned_no_exchange
    if _renameat2 is not None:
        result = _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, f"cannot swap {first} and {second}: {os.strerror(code)}")
    if not _warned_no_exchange:
        log.warning("this system cannot swap folders atomically; a query may miss a partition while it is replaced")
        _warned_no_exchange = True
    aside = second.with_name(f"{second.name}.aside-{uuid.uuid4().hex[:8]}")
    os.rename(second, aside)
    os.rename(first, second)
    os.rename(aside, first)


def has_file_in_progress(folder: Path) -> bool:
    """Whether a writer is writing a file in `folder` or below it right now (a hidden `.inprogress` file)."""
    return folder.is_dir() and any(True for _ in folder.rglob("*.inprogress"))


def install_partition(dataset: Path, relative: Path, staged: Path) -> bool:
    """Make `staged` the content of partition `relative` in one step (the caller holds the dataset's lock).

    The previous content, if any, ends up in `staged`'s place for the caller to `discard`. False (nothing
    changed) when a writer has a file in progress in the partition.
    """
    live = dataset / relative
    if has_file_in_progress(live):
        return False
    if live.is_dir():
        exchange_folders(staged, live)
    else:
        live.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staged, live)
    return True


def remove_partition(dataset: Path, relative: Path) -> bool:
    """Hide partition `relative` in one rename, delete it, prune empty parents; False if a writer is in it."""
    live = dataset / relative
    if has_file_in_progress(live):
        return False
    aside = staging_folder(dataset, "removed")
    os.rename(live, aside / "content")
    discard(aside)
    prune_empty_parents(live.parent, dataset)
    return True


def prune_empty_parents(folder: Path, dataset: Path) -> None:
    """Remove `folder` and its parents up to (not including) `dataset` while they are empty."""
    while folder != dataset and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def discard(staged: Path) -> None:
    """Delete a staging folder (its hidden parent stays: another maintenance run may be using it)."""
    shutil.rmtree(staged, ignore_errors=True)
