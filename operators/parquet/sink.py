"""The `parquet` sink: checks its configuration up front and opens one writer per worker."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

from loglake.operators.parquet.config import ParquetConfig
from loglake.operators.parquet.lineage import FinalMark, lineage_folder, write_durably
from loglake.operators.parquet.part_file import FileOptions, check_codec
from loglake.operators.parquet.writer import ParquetSinkWriter, remove_writer_files
from loglake.schemas.errors import ConfigError
from loglake.schemas.registry import register_sink
from loglake.schemas.stage import NodeContext

__all__ = ["ParquetSink"]

log = logging.getLogger(__name__)


@register_sink(ParquetConfig)
class ParquetSink:
    """A Parquet dataset folder that workers write part files into, each under its own names.

    Attributes:
        dataset_name: The dataset's name (the DuckDB view users query).
        dataset_dir: The folder the dataset's partitions are written under.
    """

    def __init__(self, config: ParquetConfig, ctx: NodeContext) -> None:
        self.config = config
        self.dataset_name = config.dataset_name
        self.dataset_dir: Path = ctx.resolve(config.path) if config.path is not None else ctx.lake / config.dataset_name
        self._ctx = ctx
        self._options = FileOptions.from_config(config)
        if self.dataset_dir.exists() and not self.dataset_dir.is_dir():
            raise ConfigError(f"'{self.dataset_dir}' is a file, not a folder", field="path" if config.path else "dataset")
        try:
            check_codec(self._options)
        except ValueError as exc:
            raise ConfigError(str(exc), field="compression_level") from None

    def open(self, worker_index: int, worker_count: int) -> ParquetSinkWriter:
        """A writer for one worker; its file names carry `w<worker_index>`, so workers never collide."""
        return ParquetSinkWriter(self.config, self._ctx, self.dataset_dir, self._options, f"w{worker_index}")

    def open_partition(
        self, partition: str, resume: Any | None, roll_back_unsnapshotted: bool = False, keeps_snapshots: bool = False
    ) -> ParquetSinkWriter:
        """The writer of one sink partition, rolled back to `resume` if given.

        Each start without a snapshot begins a new writer lineage (`p<partition>x<random>` in file names). A run
        that keeps snapshots remembers it in `<lake>/_checkpoints/writers/<dataset>/p<partition>` with which of
        its files are final (see `lineage`); with `roll_back_unsnapshotted` (a crashed run that never stored a
        snapshot), the previous lineage's files are deleted first: no snapshot covers them. A run without
        snapshots (or a replay) leaves those records alone: nothing it writes is ever rolled back.
        """
        folder = lineage_folder(self._ctx.lake, self.dataset_name)
        lineage = folder / f"p{partition}"
        if resume is not None:
            writer_id, resumed_at = str(resume.get("writer", f"p{partition}")), int(resume["sequence"])
        else:
            if roll_back_unsnapshotted and lineage.exists():
                previous = lineage.read_text(encoding="utf-8").strip()
                removed = remove_writer_files(self.dataset_dir, previous, after=0)
                if removed:
                    log.warning("%s: removed %d file(s) a crashed run wrote before its first snapshot", self._ctx.node, removed)
                    self._ctx.counters.add("files_rolled_back", removed)
            writer_id, resumed_at = f"p{partition}x{secrets.token_hex(3)}", 0
        final = None
        if keeps_snapshots:
            write_durably(lineage, writer_id)
            final = FinalMark(folder / f"p{partition}.final", writer_id, resumed_at)
        return ParquetSinkWriter(self.config, self._ctx, self.dataset_dir, self._options, writer_id, resume, final)
