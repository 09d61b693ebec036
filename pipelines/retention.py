"""Retention: drop whole Hive partitions of a dataset whose event time is older than a cutoff."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from loglake.operators.parquet.lock import DatasetLock
from loglake.pipelines.partition_swap import leaf_partitions, remove_partition
from loglake.schemas.errors import LoglakeError

__all__ = ["RetentionResult", "RetentionError", "partition_span", "partition_end", "drop_older_than"]

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


def partition_span(relative: Path) -> tuple[datetime, datetime] | None:
    """The time a partition covers: `date=2015-05-17/hour=10` → 10:00 to 11:00 that day; None without `date=`."""
    keys = dict(part.split("=", 1) for part in relative.parts if "=" in part)
    try:
        day = date.fromisoformat(keys["date"])
    except (KeyError, ValueError):
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    hour = keys.get("hour")
    if hour is not None and hour.isdigit():
        return start + timedelta(hours=int(hour)), start + timedelta(hours=int(hour) + 1)
    return start, start + timedelta(days=1)


def partition_end(relative: Path) -> datetime | None:
    """When a partition's time span ends: `date=2015-05-17/hour=10` → 11:00 that day; None without `date=`."""
    span = partition_span(relative)
    return None if span is None else span[1]


def drop_older_than(dataset: Path, cutoff: datetime, dry_run: bool = False) -> RetentionResult:
    """Drop every partition that ends at or before `cutoff`; files still being written are never touched.

    A partition is first moved out of the dataset in one rename (so queries stop seeing it at once, whole),
    under the dataset's lock, then deleted; folders left empty are removed.
    """
    if not dataset.is_dir():
        raise RetentionError(f"dataset folder {dataset} does not exist")
    leaves = [dataset / leaf for leaf in leaf_partitions(dataset)]
    ends = {leaf: partition_end(leaf.relative_to(dataset)) for leaf in leaves}
    if leaves and all(end is None for end in ends.values()):
        raise RetentionError(f"{dataset} has no 'date=' partitions, so retention cannot tell how old its data is")
    result = RetentionResult()
    lock = DatasetLock(dataset)
    for leaf, end in ends.items():
        if end is None:
            result.undated.append(leaf)
            continue
        if end > cutoff:
            continue
        sizes = [p.stat().st_size for p in leaf.iterdir() if p.is_file() and p.suffix == ".parquet"]
        if not dry_run:
            with lock.exclusive():
                removed = remove_partition(dataset, leaf.relative_to(dataset))
            if not removed:
                log.warning("kept partition %s: a writer still has a file open there; try again later", leaf)
                continue
            log.info("dropped partition %s", leaf)
        result.dropped.append(leaf)
        result.files += len(sizes)
        result.bytes += sum(sizes)
    return result
