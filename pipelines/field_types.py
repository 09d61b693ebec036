"""Which Arrow types the fields reaching each node have, where stages know them, so SQL is bound before a run.

A node declares the types of its main output's fields with `output_types(upstream)`; a field it leaves out
has a type nobody knows, and a node without the method knows none. Types travel over the graph as fields do
(`fields`): a field two inputs may carry with different types, or that an input of unknown fields may carry
with any, is unknown. The engine conforms core columns after every stage (`timestamp` to UTC microseconds,
`level` to text), so those are known wherever a stage puts them. A stage that runs SQL on records
(`check_types`) binds its expressions to the known types and skips any that reads a field of unknown type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from loglake.pipelines.fields import Fields, port_fields
from loglake.pipelines.graph import PipelineGraph
from loglake.pipelines.spec import NodeSpec, PortRef
from loglake.schemas.config import OnError
from loglake.schemas.errors import ConfigError
from loglake.schemas.records import CORE_COLUMNS, ERROR_COLUMN, ERROR_NODE_COLUMN

__all__ = ["Known", "DeclaresTypes", "ExplainsTypes", "ChecksTypes", "port_types", "type_problems"]

_CONFORMED = {name: CORE_COLUMNS[name] for name in ("timestamp", "level")}
"""Core columns every stage output is conformed to (see `conform_core_columns`)."""
_ERROR_TYPES = {ERROR_COLUMN: pa.string(), ERROR_NODE_COLUMN: pa.string()}


@dataclass(frozen=True)
class Known:
    """A field's type where it is known, and the node that gave it that type."""

    type: pa.DataType
    origin: str


PortTypes = dict[str, Known]
"""The fields of one output whose type is known (if the field is there, it has that type)."""


@runtime_checkable
class DeclaresTypes(Protocol):
    """A node that knows the types of (some of) its main output's fields from its input's."""

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The known field types of the main output, given those known of the input."""
        ...


@runtime_checkable
class ExplainsTypes(Protocol):
    """A node that can say why a field it writes has its type, and how to get another."""

    def type_note(self, field: str) -> tuple[str, str | None] | None:
        """(why, how else or None) for `field` (`("grok captures text", "capture it as %{NUMBER:response:int}")`), or None."""
        ...


@runtime_checkable
class ChecksTypes(Protocol):
    """A node that runs SQL on records and binds it to the known field types before the run."""

    def check_types(self, upstream: Mapping[str, pa.DataType], notes: Mapping[str, tuple[str, str | None]]) -> list[ConfigError]:
        """One ConfigError (its `field` the config key) per expression that cannot bind to `upstream`."""
        ...


def _agreed(name: str, parts: list[tuple[Fields, PortTypes]]) -> Known | None:
    """The type every input that may carry `name` gives it; None when one gives none or they differ."""
    found: Known | None = None
    for fields, types in parts:
        if fields is not None and name not in fields:
            continue
        known = types.get(name)
        if known is None or (found is not None and known.type != found.type):
            return None
        found = found or known
    return found


def _received(graph: PipelineGraph, fields: Mapping[PortRef, Fields], types: Mapping[PortRef, PortTypes], name: str) -> PortTypes:
    """The known types of the fields arriving at a node from all its inputs."""
    parts = [(fields[ref], types[ref]) for ref in graph.inputs_of(name)]
    merged: PortTypes = {}
    for field in dict.fromkeys(field for _, known in parts for field in known):
        agreed = _agreed(field, parts)
        if agreed is not None:
            merged[field] = agreed
    return merged


def _main(node: NodeSpec, instance: Any, received: PortTypes) -> PortTypes:
    """The main output's known types: what the instance declares, conformed core columns, error columns."""
    declared = instance.output_types({name: known.type for name, known in received.items()}) if isinstance(instance, DeclaresTypes) else {}
    if node.kind == "stage":
        declared = {**declared, **_CONFORMED}
    if getattr(node.config, "on_error", None) is OnError.keep:
        declared = {**declared, **_ERROR_TYPES}
    kept = {name: received[name] for name, kind in declared.items() if name in received and received[name].type == kind}
    return {name: kept.get(name) or Known(kind, node.name) for name, kind in declared.items()}


def _port(node: NodeSpec, port: str, received: PortTypes) -> PortTypes:
    """An extra output's known types: the input's (a conformed core column only if it already was), errors on `dropped`."""
    carried = {name: known for name, known in received.items() if node.kind != "stage" or _CONFORMED.get(name, known.type) == known.type}
    if port == "dropped":
        carried.update({name: Known(kind, node.name) for name, kind in _ERROR_TYPES.items()})
    return carried


def port_types(graph: PipelineGraph, instances: Mapping[str, Any], fields: Mapping[PortRef, Fields]) -> dict[PortRef, PortTypes]:
    """The known field types of each output of each node (`fields`: what `port_fields` gives), in topological order."""
    types: dict[PortRef, PortTypes] = {}
    for node in graph.nodes:
        if node.kind == "sink":
            continue
        received = _received(graph, fields, types, node.name)
        types[PortRef(node.name)] = _main(node, instances.get(node.name), received)
        for port in node.ports:
            types[PortRef(node.name, port)] = _port(node, port, received)
    return types


def _notes(received: PortTypes, instances: Mapping[str, Any]) -> dict[str, tuple[str, str | None]]:
    """What the node that typed each field says about it, naming that node."""
    notes: dict[str, tuple[str, str | None]] = {}
    for name, known in received.items():
        origin = instances.get(known.origin)
        note = origin.type_note(name) if isinstance(origin, ExplainsTypes) else None
        if note is not None:
            notes[name] = (f"{note[0]}, in node '{known.origin}'", note[1])
    return notes


def type_problems(graph: PipelineGraph, instances: Mapping[str, Any]) -> list[tuple[NodeSpec, ConfigError]]:
    """What each node that binds SQL reports about the fields of known type reaching it, with its node."""
    fields = port_fields(graph, instances)
    types = port_types(graph, instances, fields)
    problems: list[tuple[NodeSpec, ConfigError]] = []
    for node in graph.nodes:
        instance = instances.get(node.name)
        if not isinstance(instance, ChecksTypes):
            continue
        received = _received(graph, fields, types, node.name)
        if received:
            upstream = {name: known.type for name, known in received.items()}
            problems.extend((node, error) for error in instance.check_types(upstream, _notes(received, instances)))
    return problems
