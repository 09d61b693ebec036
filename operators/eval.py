"""The `eval` stage: compute columns with SQL expressions, rename and remove columns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

import pyarrow as pa
from pydantic import Field, model_validator

from loglake.operators.sql import SqlEvaluator, TypeNote, compile_expression, result_types, type_problems
from loglake.schemas.config import OnError, StageConfig
from loglake.schemas.errors import ConfigError
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, split_failures

__all__ = ["EvalConfig", "EvalStage"]


class EvalConfig(StageConfig):
    """Compute columns with SQL expressions, then rename columns, then remove columns.

    Example:
        tidy:
          type: eval
          fields: {status_class: "status // 100", level: "lower(level)"}
          rename: {clientip: client_ip}
          remove: [agent]
    """

    type: Literal["eval"]
    fields: dict[str, str] = Field(default_factory=dict)
    """Column name → SQL expression (DuckDB dialect); replaces a column of that name in place or appends one. Every expression reads the input record, not the other new fields."""
    rename: dict[str, str] = Field(default_factory=dict)
    """Old name → new name, applied after `fields` and all at once (`{a: b, b: a}` swaps); a missing column is skipped; renaming onto an existing column replaces that column."""
    remove: list[str] = Field(default_factory=list)
    """Columns to drop, applied last; a missing column is skipped."""

    @model_validator(mode="after")
    def _check_operations(self) -> EvalConfig:
        if not (self.fields or self.rename or self.remove):
            raise ValueError("give at least one of 'fields', 'rename' or 'remove'")
        problems: list[str] = []
        names = [*self.fields, *self.rename, *self.rename.values(), *self.remove]
        if any(not name for name in names):
            problems.append("column names must not be empty")
        targets: dict[str, str] = {}
        for old, new in self.rename.items():
            if new in targets:
                problems.append(f"rename: '{targets[new]}' and '{old}' are both renamed to '{new}'")
            targets[new] = old
            if new in self.fields and new not in self.rename:
                problems.append(
                    f"rename: '{old}' → '{new}' would overwrite the column '{new}' that 'fields' computes"
                )
        for name in self.remove:
            if name in self.fields:
                problems.append(f"remove: '{name}' is computed by 'fields' and then removed")
            if name in targets:
                problems.append(f"remove: '{name}' is the new name of '{targets[name]}' in 'rename'")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _renamed(batch: pa.RecordBatch, mapping: dict[str, str]) -> pa.RecordBatch:
    """Renames applied at once; a renamed column keeps its place and replaces a column already named like it."""
    names = batch.schema.names
    sources = {name for name in names if name in mapping}
    if not sources:
        return batch
    replaced = {mapping[name] for name in sources}
    keep = [i for i, name in enumerate(names) if name in sources or name not in replaced]
    fields = [batch.schema.field(i).with_name(mapping.get(names[i], names[i])) for i in keep]
    schema = pa.schema(fields, metadata=batch.schema.metadata)
    return pa.RecordBatch.from_arrays([batch.column(i) for i in keep], schema=schema)


@register_stage(EvalConfig)
class EvalStage:
    """Evaluates every expression of `fields` in one DuckDB query per batch, then renames and removes."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: EvalConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        expressions = {name: compile_expression(text, f"fields.{name}") for name, text in config.fields.items()}
        self._evaluator = SqlEvaluator(expressions, node=ctx.node) if expressions else None

    def _apply(self, batch: pa.RecordBatch, computed: dict[str, pa.Array]) -> pa.RecordBatch:
        for name, column in computed.items():
            index = batch.schema.get_field_index(name)
            field = pa.field(name, column.type)
            batch = batch.append_column(field, column) if index < 0 else batch.set_column(index, field, column)
        batch = _renamed(batch, self.config.rename)
        present = set(batch.schema.names)
        return batch.drop_columns([name for name in self.config.remove if name in present])

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields with `fields` added, then renamed, then `remove`d."""
        if upstream is None:
            return None
        rename = self.config.rename
        return frozenset(rename.get(name, name) for name in upstream | self.config.fields.keys()) - set(self.config.remove)

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types with `fields` computed (where DuckDB can tell their type), then renamed, then removed.

        A computed field of untold type is unknown; a renamed field keeps its type, unless the name it takes
        had another (the old column stays where the renamed one is missing).
        """
        types = {name: kind for name, kind in upstream.items() if name not in self.config.fields}
        if self._evaluator is not None:
            types.update(result_types(self._evaluator, upstream))
        rename = self.config.rename
        out = {name: kind for name, kind in types.items() if name not in rename and name not in rename.values()}
        for old, new in rename.items():
            kind, own = types.get(old), None if new in rename else types.get(new)
            if kind is not None and own in (None, kind):
                out[new] = kind
        return {name: kind for name, kind in out.items() if name not in self.config.remove}

    def check_types(self, upstream: Mapping[str, pa.DataType], notes: Mapping[str, TypeNote]) -> list[ConfigError]:
        """Each of `fields` bound to the known field types: a ConfigError for one that would fail on every record."""
        return [] if self._evaluator is None else type_problems(self._evaluator, upstream, notes)

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with fields computed, renamed and removed; records whose expression fails follow `on_error`.

        With `on_error: keep`, a failed record's computed fields are null, except that a replaced column keeps
        its old value when the new one has the same type (so kept records still share one schema).
        """
        if self._evaluator is None:
            return StageOutput(main=self._apply(batch, {}))
        result = self._evaluator.evaluate(batch)
        out = self._apply(batch, result.columns)
        if not result.failed:
            return StageOutput(main=out)
        rows = pa.array(result.failed, pa.int64())
        good = out.filter(result.ok_mask(batch.num_rows))
        failed = batch.take(rows)
        if self.config.on_error is OnError.keep:
            failed = self._apply(failed, {})  # renamed and removed; computed fields arrive as nulls
        return split_failures(good, failed, result.errors, self.ctx.node, self.config.on_error)
