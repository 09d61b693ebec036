"""Retention: drop whole Hive partitions of a dataset whose event time is older than a cutoff."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from loglake.schemas.errors import LoglakeError

__all__ = ["RetentionResult", "RetentionError", "partition_end", "drop_older_than"]

log = logging.getLogger(__name__)


class RetentionError(LoglakeError):
    """A dataset retention cannot work on (not found, no `date` partitions)."""


@dataclass
class RetentionResult:
    """What a retention pass dropped (or would drop, in a dry run) and what it could not date."""

    dropped: list[Path] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    undated: list[Path] = field(default_factory=list)


def partition_end(relative: Path) -> datetime | None:
    """When a partition's time span ends: `date=2015-05-17/hour=10` → 11:00 that day; None without `date=`."""
    keys = dict(part.split("=", 1) for part in relative.parts if "=" in part)
    try:
        day = date.fromisoformat(keys["date"])
    except (KeyError, ValueError):
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    hour = keys.get("hour")
    if hour is not None and hour.isdigit():
        return start + timedelta(hours=int(hour) + 1)
    return start + timedelta(days=1)


def _leaf_partitions(dataset: Path) -> list[Path]:
    """Folders that hold Parquet files directly, hidden ones (in-progress writes) left out."""
    leaves = {path.parent for path in dataset.rglob("*.parquet") if path.is_file()}
    return sorted(p for p in leaves if not any(part.startswith(".") for part in p.relative_to(dataset).parts))


def drop_older_than(dataset: Path, cutoff: datetime, dry_run: bool = False) -> RetentionResult:
    """Drop every partition that ends at or before `cutoff`; files still being written are never touched.

    A partition is first renamed to a hidden name (so queries stop seeing it at once, whole), then deleted;
    folders left empty are removed.
    """
    if not dataset.is_dir():
        raise RetentionError(f"dataset folder {dataset} does not exist")
    leaves = _leaf_partitions(dataset)
    ends = {leaf: partition_end(leaf.relative_to(dataset)) for leaf in leaves}
    if leaves and all(end is None for end in ends.values()):
        raise RetentionError(f"{dataset} has no 'date=' partitions, so retention cannot tell how old its data is")
    result = RetentionResult()
    for leaf, end in ends.items():
        if end is None:
            result.undated.append(leaf)
            continue
        if end > cutoff:
            continue
        if any(p.name.startswith(".") for p in leaf.iterdir()):
            log.warning("kept partition %s: a writer still has a file open there; try again later", leaf)
            continue
        files = [p for p in leaf.iterdir() if p.is_file() and p.suffix == ".parquet"]
        result.dropped.append(leaf)
        result.files += len(files)
        result.bytes += sum(p.stat().st_size for p in files)
        if not dry_run:
            _remove(leaf, dataset)
    return result


def _remove(leaf: Path, dataset: Path) -> None:
    """Hide the partition in one rename, delete it, then prune parents left empty."""
    hidden = leaf.with_name(f".dropping-{leaf.name}-{uuid.uuid4().hex[:8]}")
    os.replace(leaf, hidden)
    shutil.rmtree(hidden)
    log.info("dropped partition %s", leaf)
    parent = leaf.parent
    while parent != dataset and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
