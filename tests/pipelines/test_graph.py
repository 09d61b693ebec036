"""The DAG: dead-letter wiring, cycles, dead ends, order, and the Mermaid/DOT renderings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loglake.pipelines.graph import build_graph, to_dot, to_mermaid
from loglake.pipelines.spec import load_pipeline
from loglake.schemas.errors import SpecError

PIPELINE = """
pipeline: g
sources:
  logs: {type: file, paths: [a.log]}
stages:
  parse: {type: json}
  keep: {type: filter, condition: "true"}
sinks:
  lake: {type: parquet, dataset: app}
"""


def _graph(write_pipeline: Callable[[str], Path], text: str):  # type: ignore[no-untyped-def]
    return build_graph(load_pipeline(write_pipeline(text)))


def test_unconsumed_dropped_ports_feed_the_dead_letter_sink(write_pipeline: Callable[[str], Path]) -> None:
    graph = _graph(write_pipeline, PIPELINE)
    assert [str(ref) for ref in graph.inputs_of("dead_letter")] == ["parse.dropped", "keep.dropped"]
    assert graph.order == ["logs", "parse", "keep", "lake", "dead_letter"]


def test_a_consumed_dropped_port_does_not_go_to_dead_letter(write_pipeline: Callable[[str], Path]) -> None:
    text = PIPELINE + "  bad: {type: stdout, inputs: [parse.dropped]}\n"
    graph = _graph(write_pipeline, text)
    assert [str(ref) for ref in graph.inputs_of("dead_letter")] == ["keep.dropped"]
    assert [str(ref) for ref in graph.inputs_of("bad")] == ["parse.dropped"]


def test_cycles_are_reported_with_the_path(write_pipeline: Callable[[str], Path]) -> None:
    text = PIPELINE.replace("parse: {type: json}", "parse: {type: json, inputs: [logs, keep]}")
    with pytest.raises(SpecError) as caught:
        _graph(write_pipeline, text)
    messages = [issue.message for issue in caught.value.issues]
    assert messages == ["inputs form a cycle: parse -> keep -> parse"]
    assert caught.value.issues[0].node == "parse"


def test_a_stage_that_leads_nowhere_is_reported(write_pipeline: Callable[[str], Path]) -> None:
    text = PIPELINE.replace("  lake: {type: parquet, dataset: app}", "  lake: {type: parquet, dataset: app, inputs: [parse]}")
    with pytest.raises(SpecError) as caught:
        _graph(write_pipeline, text)
    (issue,) = caught.value.issues
    assert issue.node == "keep"
    assert issue.line == 6
    assert "leads nowhere" in issue.message


def test_mermaid_and_dot_show_every_node_and_edge(write_pipeline: Callable[[str], Path]) -> None:
    graph = _graph(write_pipeline, PIPELINE)
    mermaid = to_mermaid(graph)
    assert mermaid.startswith("flowchart LR\n")
    assert '    n_logs[/"logs<br/><small>file</small>"/]' in mermaid
    assert "    n_parse -. dropped .-> n_dead_letter" in mermaid
    assert "    n_keep --> n_lake" in mermaid
    dot = to_dot(graph)
    assert '"parse" -> "dead_letter" [style=dashed, label="dropped"];' in dot
    assert '"lake" [shape=cylinder, label="lake\\n(parquet)"];' in dot
    assert dot.count("->") == 5
