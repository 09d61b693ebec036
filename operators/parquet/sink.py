"""The `parquet` sink: checks its configuration up front and opens one writer per worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loglake.operators.parquet.config import ParquetConfig
from loglake.operators.parquet.part_file import FileOptions, check_codec
from loglake.operators.parquet.writer import ParquetSinkWriter
from loglake.schemas.errors import ConfigError
from loglake.schemas.registry import register_sink
from loglake.schemas.stage import NodeContext

__all__ = ["ParquetSink"]


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

    def open_partition(self, partition: str, resume: Any | None) -> ParquetSinkWriter:
        """The writer of one sink partition (names carry `p<partition>`), rolled back to `resume` if given."""
        return ParquetSinkWriter(self.config, self._ctx, self.dataset_dir, self._options, f"p{partition}", resume)
