"""Spec → live node objects: each source, stage and sink constructed with its own context and counters."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from loglake.pipelines.field_types import type_problems
from loglake.pipelines.fields import field_problems
from loglake.pipelines.graph import PipelineGraph, build_graph
from loglake.pipelines.nodes import config_path
from loglake.pipelines.quality import FailureLog
from loglake.pipelines.spec import DEAD_LETTER_NODE, NodeSpec, PipelineSpec, load_pipeline
from loglake.schemas.config import OnError
from loglake.schemas.errors import ConfigError, SpecError, SpecIssue
from loglake.schemas.records import conform_core_columns
from loglake.schemas.stage import FlushingStage, NodeContext, StageOutput, ended_partition, partition_of, split_failures, tag_partition

__all__ = ["CompiledPipeline", "compile_pipeline", "load_and_compile", "run_stage", "flush_stage"]

log = logging.getLogger(__name__)

failures = FailureLog()
"""Rate-limited WARNING summaries of failed records, per node."""


@dataclass
class CompiledPipeline:
    """A validated graph with every active node built: what `validate` checks and the engine runs."""

    graph: PipelineGraph
    instances: dict[str, Any]
    contexts: dict[str, NodeContext]

    @property
    def spec(self) -> PipelineSpec:
        return self.graph.spec


def _located(spec: PipelineSpec, node: NodeSpec, exc: ConfigError) -> SpecIssue:
    """A node's ConfigError as an issue at the YAML line of the config key it names."""
    return spec.issue(exc.message, (*node.path, *config_path(exc.field)), node)


def _construct(
    spec: PipelineSpec, nodes: list[NodeSpec], follow: bool | None, issues: list[SpecIssue]
) -> tuple[dict[str, Any], dict[str, NodeContext]]:
    """Construct nodes (opening files, compiling SQL); each ConfigError becomes a located issue."""
    instances: dict[str, Any] = {}
    contexts: dict[str, NodeContext] = {}
    for node in nodes:
        ctx = NodeContext(node=node.name, base_dir=spec.base_dir, follow=follow, lake_dir=spec.lake_dir)
        try:
            instances[node.name] = node.registration.factory(node.config, ctx)
        except ConfigError as exc:
            issues.append(_located(spec, node, exc))
        except OSError as exc:
            issues.append(spec.issue(f"cannot set up: {exc}", node.path, node))
        contexts[node.name] = ctx
    return instances, contexts


def compile_pipeline(spec: PipelineSpec, follow: bool | None = None) -> CompiledPipeline:
    """Build the graph, construct every active node, check the fields stages read and bind their SQL to the
    known field types; all problems in one SpecError."""
    graph = build_graph(spec)
    issues: list[SpecIssue] = []
    instances, contexts = _construct(spec, graph.nodes, follow, issues)
    issues.extend(_located(spec, node, exc) for node, exc in field_problems(graph, instances))
    issues.extend(_located(spec, node, exc) for node, exc in type_problems(graph, instances))
    if issues:
        issues.sort(key=lambda issue: (issue.line or 0, issue.column or 0))
        raise SpecError(issues, str(spec.file))
    return CompiledPipeline(graph, instances, contexts)


def load_and_compile(file: str | Path, follow: bool | None = None) -> CompiledPipeline:
    """Load, validate and construct a pipeline, reporting every problem of every stage in one SpecError.

    When the spec itself has problems, the nodes whose config is valid are still constructed, so that a
    missing input file or a bad SQL expression is reported in the same pass as a misspelt key.
    """
    try:
        spec = load_pipeline(file)
    except SpecError as exc:
        if not isinstance(exc.partial, PipelineSpec):
            raise
        partial: PipelineSpec = exc.partial
        flagged = {issue.node for issue in exc.issues}
        issues = list(exc.issues)
        _construct(partial, [n for n in partial.nodes.values() if n.name not in flagged and n.name != DEAD_LETTER_NODE], None, issues)
        issues.sort(key=lambda issue: (issue.line or 0, issue.column or 0))
        raise SpecError(issues, exc.file) from None
    return compile_pipeline(spec, follow)


def flush_stage(
    stage: Any, ctx: NodeContext, signal: pa.RecordBatch, flush: Callable[[str | None], StageOutput | None] | None = None
) -> StageOutput | None:
    """Give a stage that holds records back the chance to release them on a tick or an end marker.

    `flush` replaces `stage.flush` (the engine passes one bound to keyed state).
    """
    if flush is None:
        if not isinstance(stage, FlushingStage):
            return None
        flush = stage.flush
    with ctx.counters.timing():
        output = flush(ended_partition(signal))
    if output is None:
        return None
    output.main = conform_core_columns(output.main)
    ctx.counters.add("records_out", output.main.num_rows)
    return output


def run_stage(
    stage: Any, ctx: NodeContext, batch: pa.RecordBatch, process: Callable[[pa.RecordBatch], StageOutput] | None = None
) -> StageOutput:
    """Run one stage on one batch with counting, core-column conforming and a safety net.

    Empty batches (idle ticks) pass straight through unless `process` (which replaces `stage.process`; the
    engine passes one bound to keyed state) is given. A stage that raises (a bug, not a bad record) does
    not lose the batch: it is routed to the stage's `dropped` output with the exception as `_error`.
    """
    if batch.num_rows == 0 and process is None:
        return StageOutput(main=batch)
    ctx.counters.add("records_in", batch.num_rows)
    with ctx.counters.timing():
        try:
            output: StageOutput = (process or stage.process)(batch)
        except Exception as exc:  # noqa: BLE001 - a stage bug must not lose records or kill the run
            log.exception("%s: stage raised on a batch of %d records; routing them to %s.dropped", ctx.node, batch.num_rows, ctx.node)
            empty = batch.slice(0, 0)
            errors = [f"internal error: {type(exc).__name__}: {exc}"] * batch.num_rows
            output = split_failures(empty, batch, errors, ctx.node, OnError.route)
        output.main = conform_core_columns(output.main)
        output.extra = {port: conform_core_columns(batch) for port, batch in output.extra.items()}
    ctx.counters.add("records_out", output.main.num_rows)
    routed = output.extra.get("dropped")
    dropped = (routed.num_rows if routed is not None else 0) + output.discarded
    if dropped:
        ctx.counters.add("records_dropped", dropped)
    failures.record(ctx.node, batch.num_rows, routed, output.discarded)
    return output


Pairs = list[tuple[str | None, pa.RecordBatch]]
"""A stage's outputs as (port, batch) pairs; port None is the main output."""


def output_pairs(output: StageOutput, empty_main: bool = False) -> Pairs:
    """The non-empty outputs of a stage, main first; with `empty_main`, the main output even when empty."""
    pairs: Pairs = [(None, output.main)] if output.main.num_rows or empty_main else []
    pairs.extend((port, batch) for port, batch in output.extra.items() if batch.num_rows)
    return pairs


def tagged(pairs: Pairs, partition: str) -> Pairs:
    """Every output labelled with the source partition its records came from (so sinks keep them together)."""
    return [(port, batch if partition_of(batch) == partition else tag_partition(batch, partition)) for port, batch in pairs]
