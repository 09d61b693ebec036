"""Shorthand stages for one column operation each: `rename`, `cast`, `drop_fields` and `keep_fields`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from loglake.operators.eval import EvalConfig, EvalStage
from loglake.operators.timestamp import TimestampParser
from loglake.schemas.config import StageConfig
from loglake.schemas.records import TIMESTAMP_TYPE
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, split_failures

__all__ = [
    "RenameConfig", "RenameStage", "CastConfig", "CastStage",
    "DropFieldsConfig", "DropFieldsStage", "KeepFieldsConfig", "KeepFieldsStage", "ALWAYS_KEPT",
]

CastType = Literal["int", "float", "string", "bool", "timestamp"]
_ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(), "float": pa.float64(), "string": pa.string(), "bool": pa.bool_(), "timestamp": TIMESTAMP_TYPE,
}
ALWAYS_KEPT = ("timestamp",)
"""Columns `keep_fields` keeps besides the listed ones and loglake's `_`-prefixed metadata."""
_QUOTE_LIMIT = 80


def _names_not_empty(names: list[str]) -> list[str]:
    if any(not name for name in names):
        raise ValueError("column names must not be empty")
    return names


class RenameConfig(StageConfig):
    """Rename columns, all at once (`{a: b, b: a}` swaps); a missing column is skipped.

    Example:
        tidy: {type: rename, fields: {clientip: client_ip, response: status}}
    """

    type: Literal["rename"]
    fields: dict[str, str] = Field(min_length=1)
    """Old name → new name; renaming onto an existing column replaces that column."""

    @field_validator("fields")
    @classmethod
    def _check_targets(cls, fields: dict[str, str]) -> dict[str, str]:
        _names_not_empty([*fields, *fields.values()])
        seen: dict[str, str] = {}
        for old, new in fields.items():
            if new in seen:
                raise ValueError(f"'{seen[new]}' and '{old}' are both renamed to '{new}'")
            seen[new] = old
        return fields


@register_stage(RenameConfig)
class RenameStage:
    """The `eval` stage's rename, as its own type."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: RenameConfig, ctx: NodeContext) -> None:
        self.config = config
        self._eval = EvalStage(EvalConfig(type="eval", rename=config.fields), ctx)

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields, renamed."""
        return self._eval.output_fields(upstream)

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types, renamed."""
        return self._eval.output_types(upstream)

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with its columns renamed."""
        return self._eval.process(batch)


class DropFieldsConfig(StageConfig):
    """Remove columns; a missing column is skipped.

    Example:
        slim: {type: drop_fields, fields: [agent, referrer]}
    """

    type: Literal["drop_fields"]
    fields: list[str] = Field(min_length=1)
    """Columns to remove."""

    _check_names = field_validator("fields")(_names_not_empty)


@register_stage(DropFieldsConfig)
class DropFieldsStage:
    """Drops the listed columns present in the batch (zero-copy)."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: DropFieldsConfig, ctx: NodeContext) -> None:
        self.config = config

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields without the listed ones."""
        return None if upstream is None else upstream - set(self.config.fields)

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types without the listed fields."""
        return {name: kind for name, kind in upstream.items() if name not in self.config.fields}

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch without the listed columns."""
        present = set(batch.schema.names)
        return StageOutput(main=batch.drop_columns([name for name in self.config.fields if name in present]))


class KeepFieldsConfig(StageConfig):
    """Keep only the listed columns, plus `timestamp` and loglake's `_`-prefixed metadata (`_error`, …).

    Example:
        slim: {type: keep_fields, fields: [clientip, response, bytes]}
    """

    type: Literal["keep_fields"]
    fields: list[str] = Field(min_length=1)
    """Columns to keep, in their batch order; a missing one is skipped."""

    _check_names = field_validator("fields")(_names_not_empty)


@register_stage(KeepFieldsConfig)
class KeepFieldsStage:
    """Drops every column that is not listed, not `timestamp` and not `_`-prefixed (zero-copy)."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: KeepFieldsConfig, ctx: NodeContext) -> None:
        self.config = config
        self._keep = set(config.fields) | set(ALWAYS_KEPT)

    def _kept(self, name: str) -> bool:
        return name in self._keep or name.startswith("_")

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The listed fields the input has, `timestamp` and the `_`-prefixed ones; unknown if the input is."""
        if upstream is None:
            return None
        return frozenset(name for name in upstream if self._kept(name))

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The types of the kept fields."""
        return {name: kind for name, kind in upstream.items() if self._kept(name)}

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with only the kept columns."""
        drop = [name for name in batch.schema.names if not self._kept(name)]
        return StageOutput(main=batch.drop_columns(drop))


class CastConfig(StageConfig):
    """Convert columns to another type; a value that does not convert fails its record per `on_error`.

    Example:
        typed: {type: cast, fields: {response: int, bytes: int, ratio: float, ok: bool}}
    """

    type: Literal["cast"]
    fields: dict[str, CastType] = Field(min_length=1)
    """Column → `int` (int64), `float` (float64), `string`, `bool` (true/false/1/0) or `timestamp` (ISO 8601 text, naive = UTC, or epoch seconds); a missing column is skipped."""


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 1] + "…"


@register_stage(CastConfig)
class CastStage:
    """Casts whole columns with Arrow (safe: no truncation or overflow); on failure, isolates bad values per distinct value."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: CastConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        self._timestamps = TimestampParser(["ISO8601", "UNIX"], "UTC")

    def _cast(self, column: pa.Array, kind: str) -> tuple[pa.Array, pa.Array | None]:
        """The converted column (null where it failed) and a mask of failed rows, or None when all converted."""
        if kind == "timestamp":
            values, failed = self._timestamps.parse(column)
            return values, failed if pc.any(failed).as_py() else None
        target = _ARROW_TYPES[kind]
        if pa.types.is_string(column.type) and kind in ("int", "float", "bool"):
            column = pc.utf8_trim_whitespace(column)
        try:
            return pc.cast(column, target, safe=True), None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        encoded = pc.dictionary_encode(column)
        converted = []
        for value in encoded.dictionary:
            try:
                converted.append(pc.cast(value, target, safe=True).as_py())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                converted.append(None)
        values = pa.array(converted, target).take(encoded.indices)
        return values, pc.and_(pc.is_null(values), pc.is_valid(column))

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields, cast in place."""
        return upstream

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types, the listed fields as cast (`int` int64, `float` float64, …)."""
        return {**upstream, **{name: _ARROW_TYPES[kind] for name, kind in self.config.fields.items()}}

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with the listed columns converted; records with a value that does not convert follow `on_error`."""
        source = batch
        failed = np.zeros(batch.num_rows, dtype=bool)
        reasons: dict[int, list[str]] = {}
        for name, kind in self.config.fields.items():
            index = batch.schema.get_field_index(name)
            if index < 0:
                continue
            original = batch.column(index)
            values, bad = self._cast(original, kind)
            batch = batch.set_column(index, pa.field(name, values.type), values)
            if bad is None:
                continue
            rows = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
            for row, value in zip(rows, original.take(pa.array(rows)).to_pylist()):
                reasons.setdefault(int(row), []).append(f"{name}: cannot convert {_quote(value)} to {kind}")
            failed[rows] = True
        if not reasons:
            return StageOutput(main=batch)
        mask = pa.array(failed)
        errors = ["; ".join(reasons[row]) for row in sorted(reasons)]
        return split_failures(batch.filter(pc.invert(mask)), source.filter(mask), errors, self.ctx.node, self.config.on_error)
