"""Lake maintenance a running pipeline schedules itself: compaction and retention of its Parquet datasets.

A `parquet` sink with `compact:` or `retention:` gets a task that runs when the pipeline starts and then
every `every`, in one background thread of cluster process 0 (so a cluster compacts each dataset once). A
failing pass is logged with its dataset and tried again at the next interval; it never stops the pipeline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from loglake.operators.parquet.config import ParquetConfig
from loglake.operators.parquet.part_file import FileOptions
from loglake.pipelines.compaction import CompactionOptions, compact_dataset
from loglake.pipelines.retention import drop_older_than
from loglake.schemas.errors import LoglakeError

__all__ = ["LakeDataset", "find_dataset", "parquet_datasets", "MaintenanceTask", "maintenance_tasks", "scheduled_maintenance"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LakeDataset:
    """A dataset of the lake: its name, folder, the lake it belongs to, and its sink's settings if known."""

    name: str
    folder: Path
    lake_dir: Path
    config: ParquetConfig | None = None

    def compaction_options(self, min_age: timedelta, target_size: int | None = None) -> CompactionOptions:
        """Compaction options matching the sink's file settings (size, rows, compression, row groups)."""
        config = self.config or ParquetConfig(type="parquet", dataset=self.name)
        return CompactionOptions(
            target_size=target_size or config.max_file_size,
            max_rows=config.max_file_rows,
            min_age=min_age,
            file_options=FileOptions.from_config(config),
        )


def parquet_datasets(instances: dict[str, Any], lake_dir: Path) -> list[LakeDataset]:
    """The datasets written by a compiled pipeline's `parquet` sinks (built node instances by name)."""
    found = []
    for instance in instances.values():
        config = getattr(instance, "config", None)
        if isinstance(config, ParquetConfig):
            found.append(LakeDataset(instance.dataset_name, Path(instance.dataset_dir), lake_dir, config))
    return found


@dataclass(frozen=True)
class MaintenanceTask:
    """One scheduled job: what it does to which dataset, and how often."""

    description: str
    every: timedelta
    run: Callable[[threading.Event], str]
    """Does the work once (ending early once the event is set) and says what it did."""


def maintenance_tasks(datasets: list[LakeDataset]) -> list[MaintenanceTask]:
    """The compaction and retention jobs the datasets' sink configs ask for."""
    tasks = []
    for dataset in datasets:
        if dataset.config is None:
            continue
        if dataset.config.compact is not None:
            tasks.append(_compaction_task(dataset, dataset.config))
        if dataset.config.retention is not None:
            tasks.append(_retention_task(dataset, dataset.config.retention.older_than, dataset.config.retention.every))
    return tasks


def _compaction_task(dataset: LakeDataset, config: ParquetConfig) -> MaintenanceTask:
    assert config.compact is not None
    options = dataset.compaction_options(config.compact.min_age, config.compact.target_size)

    def run(stop: threading.Event) -> str:
        if not dataset.folder.is_dir():
            return "nothing written yet"
        done = compact_dataset(dataset.folder, (dataset.lake_dir, dataset.name), options, stop=stop)
        return f"merged {done.files_in} file(s) into {done.files_out} in {done.partitions} partition(s)"

    return MaintenanceTask(f"compact {dataset.name}", config.compact.every, run)


def _retention_task(dataset: LakeDataset, older_than: timedelta, every: timedelta) -> MaintenanceTask:
    def run(stop: threading.Event) -> str:
        if not dataset.folder.is_dir():
            return "nothing written yet"
        done = drop_older_than(dataset.folder, datetime.now(timezone.utc) - older_than)
        return f"dropped {len(done.dropped)} partition(s) older than {older_than}"

    return MaintenanceTask(f"retention {dataset.name}", every, run)


@contextmanager
def scheduled_maintenance(tasks: list[MaintenanceTask]) -> Iterator[None]:
    """Run `tasks` on their timers in a background thread for the duration of the block."""
    if not tasks:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=_run_until_stopped, args=(tasks, stop), name="loglake-maintenance", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _run_until_stopped(tasks: list[MaintenanceTask], stop: threading.Event) -> None:
    due = [time.monotonic()] * len(tasks)
    while not stop.is_set():
        for index, task in enumerate(tasks):
            if time.monotonic() >= due[index] and not stop.is_set():
                _run_once(task, stop)
                due[index] = time.monotonic() + task.every.total_seconds()
        stop.wait(max(0.0, min(due) - time.monotonic()))


def _run_once(task: MaintenanceTask, stop: threading.Event) -> None:
    try:
        log.info("%s: %s", task.description, task.run(stop))
    except (LoglakeError, OSError) as exc:
        log.error("%s failed (tried again in %s): %s", task.description, task.every, exc)


def find_dataset(name: str, lake: str | Path | None, pipeline: str | Path | None) -> LakeDataset:
    """A dataset by name (among a pipeline's Parquet sinks, then in the lake folder) or by its folder.

    Raises LoglakeError naming the datasets there are when nothing matches.
    """
    from loglake.pipelines.lake import discover_datasets
    from loglake.pipelines.spec import load_pipeline
    from loglake.schemas.stage import NodeContext

    known: dict[str, LakeDataset] = {}
    if pipeline is not None:
        spec = load_pipeline(pipeline)
        sinks = {
            node.name: node.registration.factory(node.config, NodeContext(node=node.name, base_dir=spec.base_dir, lake_dir=spec.lake_dir))
            for node in spec.of_kind("sink")
        }
        known.update({found.name: found for found in parquet_datasets(sinks, spec.lake_dir)})
        lake = lake if lake is not None else spec.lake_dir
    lake_dir = Path(lake) if lake is not None else Path("lake")
    for dataset_name, folder in discover_datasets(lake_dir).items():
        known.setdefault(dataset_name, LakeDataset(dataset_name, folder, lake_dir))
    if name in known:
        return known[name]
    folder = Path(name)
    if folder.is_dir():
        return LakeDataset(folder.name, folder, folder.parent)
    raise LoglakeError(f"no dataset '{name}'; datasets: {', '.join(sorted(known)) or 'none'}")
