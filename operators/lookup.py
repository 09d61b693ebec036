"""The `lookup` stage: join records with a static CSV or Parquet table, reloaded when the file changes."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pydantic import Field, field_validator, model_validator

from loglake.schemas.config import StageConfig
from loglake.schemas.errors import ConfigError
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, split_failures
from loglake.schemas.units import Duration

__all__ = ["LookupConfig", "LookupStage", "MISSED_COUNTER"]

log = logging.getLogger(__name__)

MISSED_COUNTER = "lookup_missed"
"""Counter of records that found no row in the table (whatever `on_miss` then does with them)."""

_FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_SHOWN_DUPLICATES = 5


class LookupConfig(StageConfig):
    """Join records with a static table (CSV or Parquet) on one or more key fields.

    Example:
        owners: {type: lookup, table: hosts.csv, on: [host], columns: [team, owner], prefix: host_}
    """

    type: Literal["lookup"]
    table: str
    """CSV or Parquet file, relative to the pipeline file's folder."""
    format: Literal["csv", "parquet"] | None = None
    """File format; default: from the extension (`.csv`, `.tsv`, `.parquet`, `.pq`, optionally compressed as `.gz`)."""
    on: list[str] | dict[str, str] = Field(min_length=1)
    """Key fields: a list of names shared by record and table, or record field → table column."""
    columns: list[str] | None = Field(default=None, min_length=1)
    """Table columns to add to each record; default: every non-key column."""
    prefix: str = ""
    """Prepended to the added columns' names (`host_` turns `team` into `host_team`)."""
    on_miss: Literal["null", "keep", "drop", "route"] = "null"
    """A record with no matching row: `null` sets the added columns to null; `keep` leaves a column the record already has as it was (new ones are null, a batch has one schema); `drop` filters it out (counted); `route` treats it as failed (`on_error`, default: to `<node>.dropped`)."""
    reload: bool = True
    """Re-read the table when its file's modification time changes; a failed reload keeps the old table."""
    reload_interval: Duration = Field(default="10s", validate_default=True)
    """How often, at most, the file's modification time is checked."""

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, data: Any) -> Any:
        """YAML reads a bare `on:` key as true and `on_miss: null` as None; take both back as written."""
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if key is True else key): value for key, value in data.items()}
        if isinstance(data, dict) and "on_miss" in data and data["on_miss"] is None:
            data = {**data, "on_miss": "null"}
        return data

    @field_validator("on")
    @classmethod
    def _check_on(cls, value: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        names = list(value) + (list(value.values()) if isinstance(value, dict) else [])
        if any(not name for name in names):
            raise ValueError("key names must not be empty")
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError("a key field is listed twice")
        return value

    @property
    def keys(self) -> dict[str, str]:
        """Record field → table column, in key order."""
        return dict(self.on) if isinstance(self.on, dict) else {name: name for name in self.on}


@dataclass(frozen=True)
class _Table:
    """A loaded, validated table: key columns (as read) and the value columns (already renamed with `prefix`)."""

    keys: list[pa.Array]
    values: pa.Table
    signature: tuple[int, int]


def _shown(values: list[str]) -> str:
    """Up to five values, then "… N more"."""
    text = ", ".join(values[:_SHOWN_DUPLICATES])
    return text + (f" … {len(values) - _SHOWN_DUPLICATES} more" if len(values) > _SHOWN_DUPLICATES else "")


def _read(path: Path, fmt: str) -> pa.Table:
    if fmt == "parquet":
        return pq.read_table(path)
    delimiter = "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","
    return pa_csv.read_csv(path, parse_options=pa_csv.ParseOptions(delimiter=delimiter))


def _plain(column: pa.ChunkedArray) -> pa.Array:
    """One chunk, dictionary-decoded, so keys can be matched with `index_in` or a join."""
    array = column.combine_chunks()
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _load(config: LookupConfig, path: Path, fmt: str) -> _Table:
    """Read and validate the table; every problem is a `ConfigError` naming the config field."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"table file '{config.table}' not found (looked for {path})", field="table") from None
    try:
        table = _read(path, fmt)
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"table '{config.table}' cannot be read as {fmt}: {exc}", field="table") from None
    keys = config.keys
    missing_keys = [(field, column) for field, column in keys.items() if column not in table.column_names]
    if missing_keys:
        field, _ = missing_keys[0]
        where = f"on.{field}" if isinstance(config.on, dict) else "on"
        names = ", ".join(f"'{column}'" for _, column in missing_keys)
        raise ConfigError(f"table '{config.table}' has no key column {names}; it has {', '.join(table.column_names)}", field=where)
    key_columns = list(keys.values())
    wanted = config.columns if config.columns is not None else [c for c in table.column_names if c not in key_columns]
    absent = [name for name in wanted if name not in table.column_names]
    if absent:
        raise ConfigError(f"table '{config.table}' has no column {', '.join(repr(c) for c in absent)}; it has {', '.join(table.column_names)}", field="columns")
    present = table.filter(pc.and_(*[pc.is_valid(table[c]) for c in key_columns])) if len(key_columns) > 1 else table.filter(pc.is_valid(table[key_columns[0]]))
    counts = present.group_by(key_columns).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    if repeated.num_rows:
        shown = [", ".join(f"{c}={v!r}" for c, v in row.items() if c != "count_all") for row in repeated.to_pylist()]
        raise ConfigError(f"table '{config.table}' has {repeated.num_rows} duplicate key(s): {_shown(shown)}", field="table")
    values = table.select(wanted).rename_columns([config.prefix + name for name in wanted]).combine_chunks()
    return _Table([_plain(table[c]) for c in key_columns], values, (stat.st_mtime_ns, stat.st_size))


def _as_key_type(column: pa.Array, target: pa.DataType) -> pa.Array:
    """`column` cast to the table key's type; values that do not convert become null (a miss)."""
    if column.type == target:
        return column
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    encoded = pc.dictionary_encode(column)  # cast once per distinct value
    converted = []
    for value in encoded.dictionary:
        try:
            converted.append(pc.cast(value, target).as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            converted.append(None)
    return pa.array(converted, target).take(encoded.indices)


@register_stage(LookupConfig)
class LookupStage:
    """Finds each record's table row with `index_in` (one key) or a hash join (several), then takes the values.

    Record order is preserved. The table is immutable once loaded; a reload swaps it in whole, so threads
    running `process` at once each see one consistent table.
    """

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: LookupConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        self._path = ctx.resolve(config.table)
        fmt: str
        if config.format is not None:
            fmt = config.format
        else:
            suffix = self._path.suffix.lower()
            if suffix == ".gz":
                suffix = Path(self._path.stem).suffix.lower()
            if suffix not in _FORMATS:
                raise ConfigError(f"cannot tell the format of '{config.table}' from its extension; set format: csv or parquet", field="table")
            fmt = _FORMATS[suffix]
        self._format = fmt
        self._table = _load(config, self._path, fmt)
        self._lock = threading.Lock()
        self._interval = config.reload_interval.total_seconds()
        self._next_check = time.monotonic() + self._interval
        self._failed_signature: tuple[int, int] | None = None

    def _current(self) -> _Table:
        """The table, reloaded first when the check is due and the file changed."""
        if not self.config.reload:
            return self._table
        now = time.monotonic()
        with self._lock:
            if now < self._next_check:
                return self._table
            self._next_check = now + self._interval
            try:
                stat = self._path.stat()
                signature = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                signature = (-1, -1)  # gone: one warning, then retried once it is back
            if signature in (self._table.signature, self._failed_signature):
                return self._table
            try:
                self._table = _load(self.config, self._path, self._format)
            except ConfigError as exc:
                self._failed_signature = signature
                log.warning("%s: reloading the table failed, keeping the old one: %s", self.ctx.node, exc.message)
            else:
                self._failed_signature = None
                log.info("%s: reloaded table %s (%d rows)", self.ctx.node, self._path, self._table.values.num_rows)
            return self._table

    def _row_indices(self, table: _Table, batch: pa.RecordBatch) -> pa.Array:
        """Per record, the index of its table row, or null on a miss."""
        n = batch.num_rows
        keys: list[pa.Array] = []
        for field, table_key in zip(self.config.keys, table.keys):
            index = batch.schema.get_field_index(field)
            if index < 0:
                return pa.nulls(n, pa.int64())
            keys.append(_as_key_type(batch.column(index), table_key.type))
        if len(keys) == 1:
            return pc.index_in(keys[0], value_set=table.keys[0], skip_nulls=True).cast(pa.int64())
        names = [f"k{i}" for i in range(len(keys))]
        left = pa.table([*keys, pa.array(np.arange(n, dtype=np.int64))], names=[*names, "row"])
        right = pa.table([*table.keys, pa.array(np.arange(len(table.keys[0]), dtype=np.int64))], names=[*names, "at"])
        joined = left.join(right, keys=names, join_type="inner")
        positions = np.full(n, -1, dtype=np.int64)
        positions[joined["row"].to_numpy()] = joined["at"].to_numpy()
        return pa.array(positions, mask=positions < 0)

    def _with_values(self, batch: pa.RecordBatch, table: _Table, rows: pa.Array, found: pa.Array) -> pa.RecordBatch:
        keep_old = self.config.on_miss == "keep"
        for name, column in zip(table.values.column_names, table.values.columns):
            values = column.take(rows).combine_chunks()
            index = batch.schema.get_field_index(name)
            if index >= 0 and keep_old:
                old = batch.column(index)
                if old.type == values.type:
                    values = pc.if_else(found, values, old)
                else:
                    values = pc.if_else(found, values, _as_key_type(old, values.type))
            field = pa.field(name, values.type)
            batch = batch.append_column(field, values) if index < 0 else batch.set_column(index, field, values)
        return batch

    def _miss_messages(self, failed: pa.RecordBatch) -> list[str]:
        """`lookup: no row for host='x', port=80`, one per missed record (values as the record had them)."""
        names = failed.schema.names
        values = [failed.column(f).to_pylist() if f in names else [None] * failed.num_rows for f in self.config.keys]
        fields = list(self.config.keys)
        return ["lookup: no row for " + ", ".join(f"{f}={v!r}" for f, v in zip(fields, row)) for row in zip(*values)]

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields and the table's columns (as loaded at start, with `prefix`)."""
        return None if upstream is None else upstream | set(self._table.values.column_names)

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types but the table columns' (unknown: a reload may change them); none when a reload may add columns."""
        if self.config.reload and self.config.columns is None:
            return {}
        added = set(self._table.values.column_names)
        return {name: kind for name, kind in upstream.items() if name not in added}

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with the table's columns added; records without a row follow `on_miss`."""
        table = self._current()
        rows = self._row_indices(table, batch)
        found = pc.is_valid(rows)
        misses = batch.num_rows - pc.sum(found.cast(pa.int64())).as_py() if batch.num_rows else 0
        if misses:
            self.ctx.counters.add(MISSED_COUNTER, misses)
            log.debug("%s: %d of %d records found no table row", self.ctx.node, misses, batch.num_rows)
        if not misses or self.config.on_miss in ("null", "keep"):
            return StageOutput(main=self._with_values(batch, table, rows, found))
        good = self._with_values(batch.filter(found), table, rows.filter(found), pa.array(np.ones(batch.num_rows - misses, dtype=bool)))
        if self.config.on_miss == "drop":
            return StageOutput(main=good)
        missed = np.flatnonzero(~found.to_numpy(zero_copy_only=False))
        failed = batch.take(pa.array(missed, pa.int64()))
        return split_failures(good, failed, self._miss_messages(failed), self.ctx.node, self.config.on_error)
