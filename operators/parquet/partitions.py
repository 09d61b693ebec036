"""Splitting a batch into Hive partitions (`date=2015-05-17/hour=10/`) with vectorised Arrow kernels.

Each partition name becomes a dictionary-encoded key column; the keys combine into one integer code per row,
the batch is sorted by that code (stably, so records keep their order) and sliced into runs. Folder names
are built once per distinct key value, never per record.

`date` and `hour` of a UTC (or zone-less) `timestamp` are whole days and hours since the epoch, found by
integer division: Arrow's calendar kernels (`floor_temporal`, `hour`) take ~4x as long, as they consult the
time zone for every value. Other zones are read in their local time by those kernels.
"""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loglake.operators.parquet.config import TIME_PARTITIONS

__all__ = ["HIVE_NULL", "PartitionKeyError", "folder_segment", "split_by_partition"]

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
"""The folder value of a null key; DuckDB and pyarrow read it back as NULL."""

_SAFE = "-_.~"
"""Characters kept as they are in folder values; everything else is percent-encoded (UTF-8)."""


class PartitionKeyError(ValueError):
    """A partition column whose values have no text form (a struct or a list)."""


def folder_segment(name: str, value: str | None) -> str:
    """`name=value` with the value percent-encoded (`/` → `%2F`, `=` → `%3D`); null → `__HIVE_DEFAULT_PARTITION__`."""
    return f"{name}={HIVE_NULL if value is None else quote(value, safe=_SAFE)}"


def split_by_partition(batch: pa.RecordBatch, names: list[str]) -> list[tuple[str, pa.RecordBatch]]:
    """(relative folder, records) per partition present in `batch`.

    `batch` must have a non-null `timestamp` when `date` or `hour` is a partition. Record columns used as
    partitions leave the records: their value lives in the folder name, where Hive readers find it.
    """
    if not names:
        return [("", batch)]
    hours = _utc_hours(batch.column("timestamp")) if set(names) & set(TIME_PARTITIONS) else None
    keys = [_key(batch, name, hours) for name in names]
    data = batch.drop_columns([n for n in names if n not in TIME_PARTITIONS and n in batch.schema.names])
    if all(len(labels) == 1 for _, labels in keys):
        return [("/".join(labels[0] for _, labels in keys), data)]
    codes, strides = _combined_codes([indices for indices, _ in keys], [len(labels) for _, labels in keys])
    order = pc.sort_indices(codes)
    runs = pc.run_end_encode(codes.take(order))
    data = data.take(order)
    parts: list[tuple[str, pa.RecordBatch]] = []
    start = 0
    for code, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist()):
        folder = "/".join(labels[(code // stride) % len(labels)] for (_, labels), stride in zip(keys, strides))
        parts.append((folder, data.slice(start, end - start)))
        start = end
    return parts


_PER_HOUR = {"s": 3600, "ms": 3600 * 10**3, "us": 3600 * 10**6, "ns": 3600 * 10**9}
_UTC = frozenset({None, "UTC", "Etc/UTC", "+00:00", "Z"})
_EPOCH = date(1970, 1, 1)


def _utc_hours(column: pa.Array) -> np.ndarray | None:
    """Whole hours since the epoch of each UTC or zone-less time (floored: 1969 stays 1969), None for other zones."""
    if column.type.tz not in _UTC or column.null_count:
        return None
    ticks = column.view(pa.int64()).to_numpy()
    hours: np.ndarray = ticks // _PER_HOUR[column.type.unit]
    return hours


def _key(batch: pa.RecordBatch, name: str, hours: np.ndarray | None) -> tuple[pa.Array, list[str]]:
    """Per-row indices into a list of folder segments for one partition name (`hours`: see `_utc_hours`)."""
    if hours is not None and name in TIME_PARTITIONS:
        if name == "date":
            days = pc.dictionary_encode(pa.array(hours // 24))
            return days.indices, [f"date={_EPOCH + timedelta(days=day):%Y-%m-%d}" for day in days.dictionary.to_pylist()]
        of_day = pc.dictionary_encode(pa.array(hours % 24))
        return of_day.indices, [f"hour={hour:02d}" for hour in of_day.dictionary.to_pylist()]
    if name == "date":
        encoded = pc.dictionary_encode(pc.floor_temporal(batch.column("timestamp"), unit="day"))
        return encoded.indices, [f"date={day:%Y-%m-%d}" for day in encoded.dictionary.to_pylist()]
    if name == "hour":
        encoded = pc.dictionary_encode(pc.hour(batch.column("timestamp")))
        return encoded.indices, [f"hour={hour:02d}" for hour in encoded.dictionary.to_pylist()]
    if name not in batch.schema.names:
        return pa.nulls(batch.num_rows, pa.int32()).fill_null(0), [folder_segment(name, None)]
    column = batch.column(name)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    try:
        encoded = pc.dictionary_encode(column, null_encoding="encode")
        text = pc.cast(encoded.dictionary, pa.string()).to_pylist()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        message = f"cannot partition by column '{name}' of type {column.type}: only text, numbers and dates name folders"
        raise PartitionKeyError(message) from None
    return encoded.indices, [folder_segment(name, value) for value in text]


def _combined_codes(indices: list[pa.Array], sizes: list[int]) -> tuple[pa.Array, list[int]]:
    """One int64 code per row that orders rows by their keys (mixed radix), and each key's stride."""
    strides: list[int] = []
    stride = 1
    for size in reversed(sizes):
        strides.insert(0, stride)
        stride *= size
    codes = pc.multiply(pc.cast(indices[0], pa.int64()), strides[0])
    for column, stride in zip(indices[1:], strides[1:]):
        codes = pc.add(codes, pc.multiply(pc.cast(column, pa.int64()), stride))
    return codes, strides
