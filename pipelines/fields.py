"""Which top-level fields may reach each node, propagated over the graph, so stages can check what they read.

A node declares its output with `output_fields(upstream)`; `None` means unknown (anything may be there) and
so does a node without the method. A stage that checks its input (`check_fields`) is checked only when
every path to it is known, so a check never fires on fields it cannot see.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from loglake.pipelines.graph import PipelineGraph
from loglake.pipelines.spec import NodeSpec, PortRef
from loglake.schemas.config import OnError
from loglake.schemas.errors import ConfigError
from loglake.schemas.records import ERROR_COLUMN, ERROR_NODE_COLUMN

__all__ = ["Fields", "DeclaresFields", "ChecksFields", "port_fields", "field_problems"]

Fields = frozenset[str] | None
"""Top-level names a record may carry; None: unknown."""

_ERROR_FIELDS = frozenset({ERROR_COLUMN, ERROR_NODE_COLUMN})


@runtime_checkable
class DeclaresFields(Protocol):
    """A node that knows its main output's fields from its input's (sources get an empty set)."""

    def output_fields(self, upstream: Fields) -> Fields:
        """The fields of the main output, given those that may arrive."""
        ...


@runtime_checkable
class ChecksFields(Protocol):
    """A stage that checks the fields it reads against those that may arrive."""

    def check_fields(self, upstream: frozenset[str]) -> list[ConfigError]:
        """One ConfigError (its `field` the config key) per field read that cannot arrive."""
        ...


def _received(graph: PipelineGraph, fields: Mapping[PortRef, Fields], name: str) -> Fields:
    """The union of the fields of a node's inputs; unknown if any input is."""
    union: frozenset[str] = frozenset()
    for ref in graph.inputs_of(name):
        part = fields[ref]
        if part is None:
            return None
        union |= part
    return union


def _with_errors(fields: Fields) -> Fields:
    return None if fields is None else fields | _ERROR_FIELDS


def port_fields(graph: PipelineGraph, instances: Mapping[str, Any]) -> dict[PortRef, Fields]:
    """The fields each output of each node may carry, in topological order.

    The main output is what the instance declares (with the error columns under `on_error: keep`);
    `dropped` carries the input and the error columns; every other port (`late`, routes) the input.
    """
    fields: dict[PortRef, Fields] = {}
    for node in graph.nodes:
        if node.kind == "sink":
            continue
        received = _received(graph, fields, node.name)
        instance = instances.get(node.name)
        main = instance.output_fields(received) if isinstance(instance, DeclaresFields) else None
        fields[PortRef(node.name)] = _with_errors(main) if getattr(node.config, "on_error", None) is OnError.keep else main
        for port in node.ports:
            fields[PortRef(node.name, port)] = _with_errors(received) if port == "dropped" else received
    return fields


def field_problems(graph: PipelineGraph, instances: Mapping[str, Any]) -> list[tuple[NodeSpec, ConfigError]]:
    """What each checking stage whose input is known reports, with its node."""
    fields = port_fields(graph, instances)
    problems: list[tuple[NodeSpec, ConfigError]] = []
    for node in graph.nodes:
        instance = instances.get(node.name)
        received = _received(graph, fields, node.name)
        if isinstance(instance, ChecksFields) and received is not None:
            problems.extend((node, error) for error in instance.check_fields(received))
    return problems
