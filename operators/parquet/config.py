"""The `parquet` sink's configuration model."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import PurePath
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from loglake.operators.parquet.encoding import ColumnEncoding
from loglake.schemas.config import ConfigPart, SinkConfig
from loglake.schemas.units import ByteSize, Duration, positive_duration

__all__ = ["ParquetConfig", "Compression", "TIME_PARTITIONS", "CompactSchedule", "RetentionSchedule"]

Compression = Literal["zstd", "snappy", "gzip", "lz4", "none"]

TIME_PARTITIONS = ("date", "hour")
"""Partition names derived from the event time instead of read from a record column."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LEVELLESS: tuple[Compression, ...] = ("snappy", "none")


def _check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{what} '{value}' must start with a letter or '_' and hold only letters, digits and '_'")
    return value


def _listed(names: list[str]) -> str:
    """`'a' is` or `'a', 'b' are`, to start a sentence about the names."""
    return f"{', '.join(repr(name) for name in names)} {'is' if len(names) == 1 else 'are'}"


class CompactSchedule(ConfigPart):
    """Merge the dataset's small files while the pipeline runs (`loglake compact` on a timer)."""

    every: Duration = Field(default="1h", validate_default=True)
    """How often the dataset is compacted, starting when the run starts."""
    min_age: Duration = Field(default="15m", validate_default=True)
    """Partitions written to more recently than this are left for a later pass."""
    target_size: ByteSize | None = None
    """Bytes a merged file grows to; default: the sink's `max_file_size`."""

    @field_validator("every")
    @classmethod
    def _every_ispositive_duration(cls, value: timedelta) -> timedelta:
        return positive_duration(value, "every")


class RetentionSchedule(ConfigPart):
    """Drop the dataset's partitions older than an age while the pipeline runs (`loglake retention` on a timer)."""

    older_than: Duration
    """Partitions whose event time ended longer ago than this are dropped, e.g. `30d`."""
    every: Duration = Field(default="1h", validate_default=True)
    """How often old partitions are looked for, starting when the run starts."""

    @field_validator("every", "older_than")
    @classmethod
    def _ispositive_duration(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        return positive_duration(value, str(info.field_name))


class ParquetConfig(SinkConfig):
    """Write records into a Hive-partitioned Parquet dataset in the lake, queryable with DuckDB.

    Example:
        lake: {type: parquet, inputs: [ua], dataset: access, partition_by: [date, hour]}
    """

    type: Literal["parquet"]
    dataset: str | None = None
    """Dataset name: its folder under the lake and the DuckDB view users query (default: the last folder of `path`)."""
    path: str | None = None
    """Folder to write instead of `<lake>/<dataset>` (relative to the pipeline file)."""
    partition_by: list[str] = ["date", "hour"]
    """Hive folders, outermost first: `date` and `hour` come from the event time (UTC), other names from record columns."""
    compression: Compression = "zstd"
    """Parquet compression codec."""
    compression_level: int | None = None
    """Codec level (zstd, gzip, lz4); default: the codec's own."""
    max_file_rows: int = Field(default=1_000_000, ge=1)
    """A file is committed once it holds this many records."""
    max_file_size: ByteSize = Field(default="128MiB", gt=0, validate_default=True)
    """A file is committed once it reaches this size on disk (checked after each row group)."""
    max_file_age: Duration = Field(default="60s", validate_default=True)
    """A file is committed this long after it was opened, so records become visible to queries."""
    row_group_size: int = Field(default=131_072, ge=1)
    """Records per Parquet row group; small batches are buffered until a group is full."""
    sort_by: list[str] = []
    """Columns each file's records are sorted by (ascending, nulls last), first column first: equal values sit together, which compresses better and lets queries skip row groups by their min/max statistics. Only records buffered together are sorted (see `sort_buffer`): a file may hold several sorted runs, files are not ordered among themselves, and records lose their arrival order."""
    sort_buffer: ByteSize = Field(default="64MiB", gt=0, validate_default=True)
    """With `sort_by`: records (Arrow bytes) a worker holds across its open files. Half is for buffering: beyond it, the records of the file written to least recently go to a thread that sorts and writes them out as one run (as a commit does) while the next half fills. Larger runs compress and prune better; a worker's peak memory grows by about twice this."""
    column_encoding: dict[str, ColumnEncoding] = {}
    """Parquet encoding per column instead of the dictionary every column gets by default: `delta` (integers and times as differences, e.g. a growing `kafka_offset`; text as shared prefixes), `byte_stream_split` (floats and integers), `plain`; struct fields are named `geo.latitude`."""
    compact: CompactSchedule | None = None
    """Compact the dataset on a timer while the pipeline runs: `{every: 1h, min_age: 15m}`, or `true` for those defaults."""
    retention: RetentionSchedule | None = None
    """Drop old partitions on a timer while the pipeline runs: `30d`, or `{older_than: 30d, every: 1h}`."""

    @field_validator("compact", mode="before")
    @classmethod
    def _compact_shorthand(cls, value: object) -> object:
        if value is True:
            return {}
        return None if value is False else value

    @field_validator("retention", mode="before")
    @classmethod
    def _retention_shorthand(cls, value: object) -> object:
        return {"older_than": value} if isinstance(value, (str, int)) else value

    @field_validator("dataset")
    @classmethod
    def _dataset_is_a_name(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value, "dataset name")

    @model_validator(mode="after")
    def _dataset_or_path(self) -> ParquetConfig:
        if self.dataset is None:
            if self.path is None:
                raise ValueError("give 'dataset' (a dataset name in the lake) or 'path' (a folder), or both")
            _check_name(self.dataset_name, "dataset name (the last folder of 'path')")
        return self

    @property
    def dataset_name(self) -> str:
        """The dataset's name: `dataset`, or the last folder of `path`."""
        return self.dataset if self.dataset is not None else PurePath(str(self.path)).name

    @field_validator("partition_by")
    @classmethod
    def _partitions_are_names(cls, value: list[str]) -> list[str]:
        for name in value:
            _check_name(name, "partition name")
        _no_repeats(value, "partition names")
        return value

    @field_validator("sort_by")
    @classmethod
    def _sort_columns(cls, value: list[str], info: ValidationInfo) -> list[str]:
        _named_outside_partitions(value, info, "sort column", "the same for a whole file")
        _no_repeats(value, "sort columns")
        return value

    @field_validator("column_encoding")
    @classmethod
    def _encoded_columns(cls, value: dict[str, ColumnEncoding], info: ValidationInfo) -> dict[str, ColumnEncoding]:
        _named_outside_partitions(list(value), info, "column", "not a column of its files")
        return value

    @field_validator("max_file_age")
    @classmethod
    def _age_ispositive_duration(cls, value: timedelta) -> timedelta:
        return positive_duration(value, "max_file_age")

    @model_validator(mode="after")
    def _level_fits_codec(self) -> ParquetConfig:
        if self.compression_level is not None and self.compression in _LEVELLESS:
            raise ValueError(f"compression_level cannot be set with compression '{self.compression}'")
        return self

    @model_validator(mode="after")
    def _sort_buffer_needs_sort_by(self) -> ParquetConfig:
        if "sort_buffer" in self.model_fields_set and not self.sort_by:
            raise ValueError("sort_buffer is set but sort_by is not: give the columns to sort by, or drop sort_buffer")
        return self


def _named_outside_partitions(names: list[str], info: ValidationInfo, what: str, why: str) -> None:
    """Every name non-empty and none a `partition_by` column (whose value is the folder's name: `why`)."""
    if any(not name for name in names):
        raise ValueError(f"{what} names must not be empty")
    partitions = [name for name in names if name in info.data.get("partition_by", ())]
    if partitions:
        raise ValueError(f"{_listed(partitions)} in partition_by: a partition's value is its folder name, {why}")


def _no_repeats(names: list[str], what: str) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{what} repeat: {', '.join(repeated)}")
