"""The pipeline DAG: edges between node ports, structural checks, topological order, Mermaid and DOT."""

from __future__ import annotations

from dataclasses import dataclass

from loglake.pipelines.spec import DEAD_LETTER_NODE, NodeSpec, PipelineSpec, PortRef
from loglake.schemas.errors import SpecError, SpecIssue

__all__ = ["Edge", "PipelineGraph", "build_graph", "to_mermaid", "to_dot"]


@dataclass(frozen=True)
class Edge:
    """Records flow from `source` (a node's main output or one of its ports) into node `target`."""

    source: PortRef
    target: str


@dataclass
class PipelineGraph:
    """The validated DAG of a pipeline; `order` lists active nodes so that inputs come first."""

    spec: PipelineSpec
    edges: list[Edge]
    order: list[str]

    @property
    def nodes(self) -> list[NodeSpec]:
        """Active nodes in topological order (the dead-letter sink only when something feeds it)."""
        return [self.spec.nodes[name] for name in self.order]

    def inputs_of(self, name: str) -> list[PortRef]:
        """The ports feeding a node."""
        return [edge.source for edge in self.edges if edge.target == name]


def build_graph(spec: PipelineSpec) -> PipelineGraph:
    """Wire edges (unconsumed `.dropped` ports go to the dead-letter sink) and check the DAG; SpecError on problems."""
    edges = [Edge(ref, node.name) for node in spec.nodes.values() for ref in node.inputs]
    consumed = {edge.source for edge in edges}
    for node in spec.nodes.values():
        dropped = PortRef(node.name, "dropped")
        if node.kind != "sink" and "dropped" in node.ports and dropped not in consumed:
            edges.append(Edge(dropped, DEAD_LETTER_NODE))
    issues = _cycle_issues(spec, edges) + _dead_end_issues(spec, edges)
    if issues:
        raise SpecError(issues, str(spec.file))
    active = {name for name in spec.nodes if name != DEAD_LETTER_NODE or any(e.target == name for e in edges)}
    return PipelineGraph(spec, edges, _topological_order(spec, edges, active))


def _successors(edges: list[Edge]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for edge in edges:
        out.setdefault(edge.source.node, []).append(edge.target)
    return out


def _cycle_issues(spec: PipelineSpec, edges: list[Edge]) -> list[SpecIssue]:
    successors = _successors(edges)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    issues: list[SpecIssue] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in successors.get(name, []):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                node = spec.nodes[nxt]
                issues.append(spec.issue(f"inputs form a cycle: {' -> '.join(cycle)}", (*node.path, "inputs"), node))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[name] = 2

    for name in spec.nodes:
        if name not in state:
            visit(name, [name])
    return issues


def _dead_end_issues(spec: PipelineSpec, edges: list[Edge]) -> list[SpecIssue]:
    """Nodes none of whose outputs is read (the `dropped` port does not count: it has the dead-letter sink)."""
    read = {edge.source.node for edge in edges if edge.source.port != "dropped"}
    return [
        spec.issue(
            f"{node.kind} '{node.name}' leads nowhere: no stage or sink reads its output "
            "(add it to a sink's inputs, or remove it)",
            node.path,
            node,
        )
        for node in spec.nodes.values()
        if node.kind != "sink" and node.name not in read
    ]


def _topological_order(spec: PipelineSpec, edges: list[Edge], active: set[str]) -> list[str]:
    pending = {name: {e.source.node for e in edges if e.target == name} for name in spec.nodes if name in active}
    order: list[str] = []
    while pending:
        ready = [name for name, deps in pending.items() if not deps - set(order)]
        order.extend(ready)  # declaration order among the ready ones
        for name in ready:
            del pending[name]
    return order


_MERMAID_SHAPES = {"source": ('[/"', '"/]'), "stage": ('["', '"]'), "sink": ('[("', '")]')}
_DOT_SHAPES = {"source": "parallelogram", "stage": "box", "sink": "cylinder"}


def _safe_id(name: str) -> str:
    return "n_" + name.replace("-", "_")


def to_mermaid(graph: PipelineGraph) -> str:
    """A Mermaid flowchart (paste into Markdown on GitHub or mermaid.live)."""
    lines = ["flowchart LR"]
    for node in graph.nodes:
        left, right = _MERMAID_SHAPES[node.kind]
        lines.append(f"    {_safe_id(node.name)}{left}{node.name}<br/><small>{node.type_name}</small>{right}")
    for edge in graph.edges:
        arrow = "-->" if edge.source.port is None else f"-. {edge.source.port} .->"
        lines.append(f"    {_safe_id(edge.source.node)} {arrow} {_safe_id(edge.target)}")
    return "\n".join(lines) + "\n"


def to_dot(graph: PipelineGraph) -> str:
    """A Graphviz DOT digraph (`loglake graph p.yaml --format dot | dot -Tsvg > p.svg`)."""
    lines = [f'digraph "{graph.spec.name}" {{', "    rankdir=LR;", "    node [fontname=Helvetica];"]
    for node in graph.nodes:
        lines.append(f'    "{node.name}" [shape={_DOT_SHAPES[node.kind]}, label="{node.name}\\n({node.type_name})"];')
    for edge in graph.edges:
        style = "" if edge.source.port is None else f' [style=dashed, label="{edge.source.port}"]'
        lines.append(f'    "{edge.source.node}" -> "{edge.target}"{style};')
    lines.append("}")
    return "\n".join(lines) + "\n"
