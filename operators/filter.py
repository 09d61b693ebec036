"""The `filter` stage: keep the records for which a SQL condition is true."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

import pyarrow as pa

from loglake.operators.sql import SqlEvaluator, TypeNote, compile_expression, type_problems
from loglake.schemas.config import StageConfig
from loglake.schemas.errors import ConfigError
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, split_failures

__all__ = ["FilterConfig", "FilterStage"]


class FilterConfig(StageConfig):
    """Keep the records for which a SQL condition is true; the others are filtered out.

    Example:
        errors: {type: filter, condition: "level = 'error' AND status >= 500"}
    """

    type: Literal["filter"]
    condition: str
    """SQL boolean expression in DuckDB's dialect; NULL counts as false and a missing column reads as NULL."""


@register_stage(FilterConfig)
class FilterStage:
    """Computes the condition as one boolean mask per batch and filters the batch with it (zero-copy)."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: FilterConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        condition = compile_expression(config.condition, "condition", cast="BOOLEAN")
        self._evaluator = SqlEvaluator({"condition": condition}, node=ctx.node)

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields (records are kept or not, never changed)."""
        return upstream

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types."""
        return dict(upstream)

    def check_types(self, upstream: Mapping[str, pa.DataType], notes: Mapping[str, TypeNote]) -> list[ConfigError]:
        """The condition bound to the known field types: a ConfigError if it would fail on every record."""
        return type_problems(self._evaluator, upstream, notes)

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The records whose condition is true; those whose condition fails to evaluate follow `on_error`."""
        if batch.num_rows == 0:
            return StageOutput(main=batch)
        result = self._evaluator.evaluate(batch)
        kept = batch.filter(result.truth("condition"))
        if not result.failed:
            return StageOutput(main=kept)
        failed = batch.take(pa.array(result.failed, pa.int64()))
        return split_failures(kept, failed, result.errors, self.ctx.node, self.config.on_error)
