"""Pipeline file → validated `PipelineSpec`: every node's config checked, inputs resolved, all problems collected."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from loglake.pipelines.nodes import did_you_mean, resolve_type, validate_config
from loglake.pipelines.yamlfile import LocatedYaml, load_yaml
from loglake.schemas.config import NodeConfig
from loglake.schemas.errors import SpecError, SpecIssue
from loglake.schemas.pipeline import NODE_NAME_PATTERN, SECTIONS, PipelineHeader
from loglake.schemas.registry import Kind, Registration

__all__ = ["NodeSpec", "PortRef", "PipelineSpec", "load_pipeline", "parse_pipeline", "DEAD_LETTER_NODE"]

DEAD_LETTER_NODE = "dead_letter"
"""Name of the implicit sink that receives `.dropped` outputs no node consumes."""
_DEFAULT_DEAD_LETTER: dict[str, Any] = {"type": "parquet", "dataset": "dead_letter"}


@dataclass(frozen=True)
class PortRef:
    """A reference to a node's output: `parse` (main output) or `parse.dropped`."""

    node: str
    port: str | None = None

    def __str__(self) -> str:
        return self.node if self.port is None else f"{self.node}.{self.port}"

    @classmethod
    def parse(cls, text: str) -> PortRef:
        node, _, port = text.partition(".")
        return cls(node, port or None)


@dataclass
class NodeSpec:
    """One validated node: its kind, config, resolved inputs and where it is in the file."""

    name: str
    kind: Kind
    registration: Registration
    config: NodeConfig
    inputs: list[PortRef] = field(default_factory=list)
    path: tuple[str | int, ...] = ()

    @property
    def type_name(self) -> str:
        return self.registration.type_name

    @property
    def ports(self) -> tuple[str, ...]:
        """Extra output ports (besides the main output) this node exposes.

        A type whose ports depend on its config (`route`) defines `ports_for(config)`; others list `outputs`.
        """
        ports_for = getattr(self.registration.factory, "ports_for", None)
        if ports_for is not None:
            return tuple(ports_for(self.config))
        return tuple(getattr(self.registration.factory, "outputs", ()))


@dataclass
class PipelineSpec:
    """A pipeline file, fully validated; the input of graph building and of the engine."""

    name: str
    file: Path
    header: PipelineHeader
    nodes: dict[str, NodeSpec]
    source: LocatedYaml

    @property
    def base_dir(self) -> Path:
        """The pipeline file's folder; relative paths in the file resolve against it."""
        return self.file.parent

    @property
    def lake_dir(self) -> Path:
        """The lake folder (`lake:`), absolute."""
        lake = Path(self.header.lake).expanduser()
        return lake if lake.is_absolute() else self.base_dir / lake

    def of_kind(self, kind: Kind) -> list[NodeSpec]:
        """Nodes of one kind, in declaration order."""
        return [node for node in self.nodes.values() if node.kind == kind]

    def issue(self, message: str, path: tuple[str | int, ...], node: NodeSpec | None = None) -> SpecIssue:
        """A located issue, optionally about a node."""
        return self.source.issue(message, path, node.name if node else None, node.type_name if node else None)


def load_pipeline(file: str | Path, environ: Mapping[str, str] | None = None) -> PipelineSpec:
    """Read and validate a pipeline file; SpecError lists every problem found."""
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecIssue(f"pipeline file '{path}' not found", file=str(path))], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue(f"cannot read pipeline file: {exc}", file=str(path))], str(path)) from None
    return parse_pipeline(text, path, environ)


def parse_pipeline(text: str, file: Path, environ: Mapping[str, str] | None = None) -> PipelineSpec:
    """Validate pipeline YAML text (as if read from `file`)."""
    located = load_yaml(text, str(file), environ)
    issues: list[SpecIssue] = []
    header = _validate_header(located, issues)
    if header is None or not isinstance(header.pipeline, str):
        raise SpecError(issues, str(file))
    nodes = _validate_nodes(located, header, issues)
    spec = PipelineSpec(header.pipeline, file.resolve(), header, nodes, located)
    if not issues:
        _resolve_inputs(spec, issues)
    if issues:
        raise SpecError(issues, str(file), partial=spec)
    return spec


def _validate_header(located: LocatedYaml, issues: list[SpecIssue]) -> PipelineHeader | None:
    """The top-level keys; problems are collected and, where the node sections are usable, checking goes on."""
    data = located.data
    if not isinstance(data, dict):
        issues.append(located.issue("a pipeline file must be a mapping with 'pipeline', 'sources' and 'sinks' keys", ()))
        return None
    try:
        return PipelineHeader.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            if error["type"] == "extra_forbidden":
                hint = did_you_mean(str(loc[0]), list(PipelineHeader.model_fields), "keys")
                issues.append(located.issue(f"unknown top-level key '{loc[0]}'{hint}", loc, at_key=True))
            elif error["type"] == "missing":
                issues.append(located.issue(f"missing required key '{loc[-1]}'", loc))
            else:
                issues.append(located.issue(str(error["msg"]), loc))
    sections = {name: data.get(name) for name in SECTIONS}
    if all(isinstance(value, dict) for value in sections.values() if value is not None):
        known = {k: v for k, v in data.items() if k in PipelineHeader.model_fields}
        return PipelineHeader.model_construct(**{**{"pipeline": "pipeline", "sources": {}, "sinks": {}, "stages": {}}, **known})
    return None


def _validate_nodes(located: LocatedYaml, header: PipelineHeader, issues: list[SpecIssue]) -> dict[str, NodeSpec]:
    nodes: dict[str, NodeSpec] = {}
    sections: list[tuple[str, Kind, dict[str, Any]]] = [
        (section, kind, getattr(header, section)) for section, kind in SECTIONS.items()  # type: ignore[misc]
    ]
    for section, kind, members in sections:
        if section != "stages" and not members and section in located.data:
            issues.append(located.issue(f"'{section}' needs at least one node", (section,)))
        for name, raw in members.items():
            spec = _validate_node(located, kind, name, raw, (section, name), nodes, issues)
            if spec is not None:
                nodes[name] = spec
    dead_letter = header.dead_letter if header.dead_letter is not None else _DEFAULT_DEAD_LETTER
    if DEAD_LETTER_NODE in nodes:
        issues.append(located.issue(f"'{DEAD_LETTER_NODE}' is reserved for the dead-letter sink; rename this node", nodes[DEAD_LETTER_NODE].path))
    else:
        spec = _validate_node(located, "sink", DEAD_LETTER_NODE, dead_letter, ("dead_letter",), nodes, issues)
        if spec is not None:
            nodes[DEAD_LETTER_NODE] = spec
    return nodes


def _validate_node(
    located: LocatedYaml,
    kind: Kind,
    name: str,
    raw: Any,
    path: tuple[str | int, ...],
    seen: dict[str, NodeSpec],
    issues: list[SpecIssue],
) -> NodeSpec | None:
    if not re.match(NODE_NAME_PATTERN, name):
        issues.append(located.issue(f"node name '{name}' must be letters, digits, '_' or '-' (no dots)", path, name))
        return None
    if name in seen:
        issues.append(located.issue(f"node name '{name}' is already used by {seen[name].kind} '{name}'", path, name))
        return None
    try:
        registration = resolve_type(kind, name, raw)
        config = validate_config(registration, name, raw)
    except SpecError as exc:
        for issue in exc.issues:
            issues.append(located.issue(issue.message, (*path, *issue.path), name, issue.node_type, at_key=issue.about_key))
        return None
    return NodeSpec(name, kind, registration, config, path=path)


def _resolve_inputs(spec: PipelineSpec, issues: list[SpecIssue]) -> None:
    """Fill in default inputs (the node declared just before) and check that every reference exists."""
    previous: NodeSpec | None = None
    for node in spec.nodes.values():
        if node.kind == "source":
            previous = node
            continue
        declared: list[str] | None = getattr(node.config, "inputs", None)
        if declared is None:
            if node.name == DEAD_LETTER_NODE:
                continue  # wired by the graph builder to every unconsumed `.dropped`
            if previous is None:
                issues.append(spec.issue("no 'inputs' and no node declared before it to default to", node.path, node))
                continue
            node.inputs = [PortRef(previous.name)]
        else:
            for index, text in enumerate(declared):
                ref = PortRef.parse(text)
                problem = _check_ref(spec, node, ref)
                if problem:
                    issues.append(spec.issue(problem, (*node.path, "inputs", index), node))
                else:
                    node.inputs.append(ref)
        if node.kind == "stage":
            previous = node


def _check_ref(spec: PipelineSpec, node: NodeSpec, ref: PortRef) -> str | None:
    target = spec.nodes.get(ref.node)
    if target is None:
        names = [n for n, t in spec.nodes.items() if t.kind != "sink"]
        hint = did_you_mean(ref.node, names, "nodes")
        return f"input '{ref}' names no node{hint}"
    if target.kind == "sink":
        return f"input '{ref}' is a sink; sinks have no output"
    if target.name == node.name:
        return f"input '{ref}' is the node itself"
    if ref.port is not None and ref.port not in target.ports:
        valid = ", ".join(f"'{target.name}.{p}'" for p in target.ports) or "none"
        return f"input '{ref}': {target.type_name} node '{target.name}' has no output '{ref.port}' (its extra outputs: {valid})"
    return None
