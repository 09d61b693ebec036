"""`replay --rebuild`: re-run a fixed pipeline over a time range and replace exactly the lake partitions it covers.

A plain replay into the live datasets would add its rows beside the old ones. A rebuild instead points each
of the pipeline's `parquet` sinks at a staging copy of its dataset, runs the replay, and only then, for every
time partition inside `[since, until)`, swaps the staged partition in (`partition_swap`: one atomic exchange
per partition, under the dataset's lock) or, where the replay produced nothing for a partition, removes the
live one. Partitions outside the range are never touched, and records the replay put outside it (a window
reaching past the end, a stray event time) are discarded and counted. The range must fall on partition
boundaries (whole hours for `date/hour` datasets, whole days for `date`), so no partition is half replaced.
A failed replay replaces nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq

from loglake.operators.parquet.config import TIME_PARTITIONS, ParquetConfig
from loglake.operators.parquet.lock import DatasetLock
from loglake.pipelines.partition_swap import discard, install_partition, leaf_partitions, remove_partition, staging_folder
from loglake.pipelines.retention import partition_span
from loglake.pipelines.spec import NodeSpec
from loglake.schemas.errors import LoglakeError, UsageError

__all__ = ["RebuildError", "RebuildTarget", "RebuildOutcome", "Rebuild"]

log = logging.getLogger(__name__)

_WAIT_FOR_WRITERS = 30.0
"""Seconds a partition swap waits for a live writer to finish a file in that partition."""


class RebuildError(LoglakeError):
    """Partitions a rebuild could not replace (a writer kept a file open there)."""


@dataclass(frozen=True)
class RebuildTarget:
    """One dataset a rebuild replaces: the sink writing it, its live folder and the staging copy written instead."""

    sink: str
    dataset: str
    live: Path
    staged: Path
    depth: int
    """How many leading folders of a partition's path name its time (`date=…/hour=…` → 2)."""

    def time_folders(self, root: Path) -> set[Path]:
        """The time partitions (`date=…/hour=…`, with any field folders above them) holding files under `root`."""
        return {Path(*leaf.parts[: self.depth]) for leaf in leaf_partitions(root)} if root.is_dir() else set()


@dataclass
class RebuildOutcome:
    """What a rebuild changed in each dataset."""

    replaced: dict[str, int] = field(default_factory=dict)
    """Partitions swapped for the replay's, per dataset."""
    emptied: dict[str, int] = field(default_factory=dict)
    """Partitions removed because the replay produced nothing for them, per dataset."""
    outside: int = 0
    """Records the replay wrote outside the range, discarded."""


class Rebuild:
    """The staging, checks and final swap of one `replay --rebuild` over `[since, until)`."""

    def __init__(self, since: datetime, until: datetime) -> None:
        self.since, self.until = since.astimezone(timezone.utc), until.astimezone(timezone.utc)
        self.targets: list[RebuildTarget] = []

    def redirect(self, nodes: dict[str, NodeSpec], live_folders: dict[str, Path]) -> None:
        """Point every `parquet` sink among `nodes` at a staging copy of its dataset (`live_folders`: by sink)."""
        for name, node in list(nodes.items()):
            if node.kind != "sink" or not isinstance(node.config, ParquetConfig):
                continue
            depth = self._checked_depth(name, node.config)
            live = live_folders[name]
            staged = staging_folder(live, "rebuild", create=False) / node.config.dataset_name  # the sink creates it
            self.targets.append(RebuildTarget(name, node.config.dataset_name, live, staged, depth))
            nodes[name] = dataclasses.replace(node, config=node.config.model_copy(update={"path": str(staged)}))
        if not self.targets:
            raise UsageError("--rebuild replaces partitions of parquet datasets, and no parquet sink gets records in this replay")

    def _checked_depth(self, sink: str, config: ParquetConfig) -> int:
        """The time depth of a sink's partitions; a UsageError when they have no date or the range splits one."""
        keys = config.partition_by
        if "date" not in keys:
            raise UsageError(f"--rebuild: sink '{sink}' partitions by {keys or 'nothing'}, not by date, so a time range names none of its partitions")
        grain = timedelta(hours=1) if "hour" in keys else timedelta(days=1)
        for flag, moment in (("--since", self.since), ("--until", self.until)):
            start = datetime(moment.year, moment.month, moment.day, tzinfo=timezone.utc)
            floor = start + (moment - start) // grain * grain
            if floor != moment:
                unit = "hour" if grain == timedelta(hours=1) else "day"
                raise UsageError(
                    f"{flag} {moment.isoformat()} falls inside a partition of sink '{sink}' (one per {unit}), and a rebuild "
                    f"replaces whole partitions: use {flag} {floor.isoformat()} or {(floor + grain).isoformat()}"
                )
        return max(keys.index(key) for key in TIME_PARTITIONS if key in keys) + 1

    def install(self) -> RebuildOutcome:
        """Swap the staged partitions in the range into the live datasets, remove live ones the replay left empty.

        Raises RebuildError listing partitions a live writer kept busy (the others are replaced).
        """
        outcome = RebuildOutcome()
        busy: list[str] = []
        for target in self.targets:
            staged = {folder for folder in target.time_folders(target.staged) if self._covers(folder)}
            outcome.outside += self._rows_outside(target)
            live = {folder for folder in target.time_folders(target.live) if self._covers(folder)}
            lock = DatasetLock(target.live)
            for folder in sorted(staged | live):
                if not self._swap(target, folder, folder in staged, lock):
                    busy.append(f"{target.dataset}/{folder.as_posix()}")
                    continue
                counts = outcome.replaced if folder in staged else outcome.emptied
                counts[target.dataset] = counts.get(target.dataset, 0) + 1
        self.discard()
        if busy:
            raise RebuildError(f"a writer kept files open in {len(busy)} partition(s), left as they were: {', '.join(busy)}; run the rebuild again")
        return outcome

    def discard(self) -> None:
        """Delete the staging copies (after the swap they hold the replaced partitions)."""
        for target in self.targets:
            discard(target.staged.parent)

    def _covers(self, folder: Path) -> bool:
        span = partition_span(folder)
        return span is not None and self.since <= span[0] and span[1] <= self.until

    def _rows_outside(self, target: RebuildTarget) -> int:
        outside = [leaf for leaf in leaf_partitions(target.staged) if not self._covers(Path(*leaf.parts[: target.depth]))] if target.staged.is_dir() else []
        return sum(pq.ParquetFile(path).metadata.num_rows for leaf in outside for path in (target.staged / leaf).glob("*.parquet"))

    def _swap(self, target: RebuildTarget, folder: Path, staged: bool, lock: DatasetLock) -> bool:
        """Replace (or remove) one live partition, waiting a while for a writer busy in it; False if it stayed busy."""
        deadline = time.monotonic() + _WAIT_FOR_WRITERS
        while True:
            with lock.exclusive():
                done = install_partition(target.live, folder, target.staged / folder) if staged else remove_partition(target.live, folder)
            if done or time.monotonic() > deadline:
                return done
            time.sleep(0.2)
