"""The `route` stage: send each record to the named outputs whose SQL condition it matches."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from loglake.operators.sql import SqlEvaluator, TypeNote, compile_expression, type_problems
from loglake.schemas.config import OnError, StageConfig
from loglake.schemas.errors import ConfigError
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, split_failures, with_error_columns

__all__ = ["RouteConfig", "RouteStage", "UNMATCHED", "RESERVED_ROUTE_NAMES"]

UNMATCHED = "_unmatched"
"""The output of records that match no route."""
RESERVED_ROUTE_NAMES = frozenset({UNMATCHED, "dropped", "late"})
"""Port names loglake gives its own meaning to; no route may take them."""
_ROUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RouteConfig(StageConfig):
    """Send each record to the outputs `node.<route>` whose SQL condition it matches, and records that
    match none to `node._unmatched`; the main output `node` passes every record on unchanged.

    All conditions are evaluated in one query per batch (simple comparisons by Arrow, without a query). A record whose condition fails to evaluate goes
    to no route and follows `on_error` (`route`: to `node.dropped`; `keep`: the main output carries it with
    `_error` set). Because the main output is the input untouched, a route node can sit inline between two
    stages while its routes branch off.

    Example:
        split: {type: route, mode: first, routes: {errors: "response >= 500", bots: "agent ILIKE '%bot%'"}}
    """

    type: Literal["route"]
    routes: dict[str, str] = Field(min_length=1)
    """Route name → SQL boolean condition in DuckDB's dialect; NULL counts as false. Each route is an output `node.<name>`."""
    mode: Literal["all", "first"] = "all"
    """`all`: a record goes to every route it matches; `first`: only to the first one, in the order written."""


@register_stage(RouteConfig)
class RouteStage:
    """Evaluates every route's condition in one query per batch and filters the batch once per route."""

    outputs: ClassVar[tuple[str, ...]] = (UNMATCHED, "dropped")
    """The outputs every route node has; `ports_for` adds one per route."""

    @staticmethod
    def ports_for(config: RouteConfig) -> tuple[str, ...]:
        """The node's extra outputs: one per route, in the order written, then `_unmatched` and `dropped`."""
        return (*config.routes, *RouteStage.outputs)

    def __init__(self, config: RouteConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        for name in config.routes:
            _check_route_name(name)
        conditions = {
            name: compile_expression(text, f"routes.{name}", cast="BOOLEAN") for name, text in config.routes.items()
        }
        self._evaluator = SqlEvaluator(conditions, node=ctx.node)
        self._read: frozenset[str] = frozenset((*config.routes, UNMATCHED))
        """The route outputs to build: all of them unless the engine says fewer are read."""

    def read_ports(self, ports: frozenset[str]) -> None:
        """Build only the routes (and `_unmatched`) that some node reads: a filtered copy per batch is the cost."""
        self._read = ports & frozenset((*self.config.routes, UNMATCHED))

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields: the main output is the input (the routes carry it too)."""
        return upstream

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types (on every output)."""
        return dict(upstream)

    def check_types(self, upstream: Mapping[str, pa.DataType], notes: Mapping[str, TypeNote]) -> list[ConfigError]:
        """Each condition bound to the known field types: a ConfigError for one that would fail on every record."""
        return type_problems(self._evaluator, upstream, notes)

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch unchanged on the main output, and on each route's output the records it takes."""
        if batch.num_rows == 0:
            return StageOutput(main=batch)
        result = self._evaluator.evaluate(batch)
        matches = [result.truth(name) for name in self.config.routes]
        taken = pa.repeat(pa.scalar(False), batch.num_rows)  # rows some route has taken so far
        extra: dict[str, pa.RecordBatch] = {}
        for name, match in zip(self.config.routes, matches):
            mask = pc.and_not(match, taken) if self.config.mode == "first" else match
            taken = pc.or_(taken, match)
            if name in self._read:
                _add_port(extra, name, batch, mask)
        if UNMATCHED in self._read:
            unmatched = pc.invert(taken)
            if result.failed:  # a failed row matches nothing; it is not "unmatched" either
                unmatched = pc.and_(unmatched, result.ok_mask(batch.num_rows))
            _add_port(extra, UNMATCHED, batch, unmatched)
        if not result.failed:
            return StageOutput(main=batch, extra=extra)
        return self._with_failures(batch, result.failed, result.errors, extra)

    def _with_failures(
        self, batch: pa.RecordBatch, failed: list[int], errors: list[str], extra: dict[str, pa.RecordBatch]
    ) -> StageOutput:
        """Apply `on_error` to the rows whose conditions failed; the main output still holds every row."""
        if self.config.on_error is OnError.keep:
            messages: list[str | None] = [None] * batch.num_rows
            for row, error in zip(failed, errors):
                messages[row] = error
            marked = with_error_columns(batch, pa.array(messages, pa.string()), self.ctx.node)
            return StageOutput(main=marked, extra=extra)
        output = split_failures(batch, batch.take(pa.array(failed, pa.int64())), errors, self.ctx.node, self.config.on_error)
        output.extra.update(extra)
        return output


def _add_port(extra: dict[str, pa.RecordBatch], port: str, batch: pa.RecordBatch, mask: pa.BooleanArray) -> None:
    """Put the rows `mask` selects on `port`, when there are any (the whole batch as is when it selects all)."""
    count = mask.true_count
    if count:
        extra[port] = batch if count == batch.num_rows else batch.filter(mask)


def _check_route_name(name: str) -> None:
    if not _ROUTE_NAME.match(name):
        raise ConfigError(
            f"route name '{name}' must start with a letter or '_' and hold only letters, digits and '_' "
            f"(it becomes the output '<node>.{name}')",
            field=f"routes.{name}",
        )
    if name in RESERVED_ROUTE_NAMES:
        reserved = ", ".join(sorted(RESERVED_ROUTE_NAMES))
        raise ConfigError(f"route name '{name}' is reserved for loglake's own outputs ({reserved}); rename it", field=f"routes.{name}")
