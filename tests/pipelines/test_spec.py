"""Spec validation: the exact messages a user sees, with file, line, column, YAML path and node."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loglake.pipelines.compile import load_and_compile
from loglake.pipelines.spec import PortRef, load_pipeline
from loglake.schemas.errors import SpecError

GOOD = """
pipeline: app
sources:
  logs: {type: file, paths: [app.log]}
stages:
  parse: {type: json}
  errors_only: {type: filter, condition: "level = 'error'"}
  tidy: {type: eval, inputs: [parse], fields: {n: "1"}}
sinks:
  lake: {type: parquet, dataset: app, inputs: [errors_only, tidy]}
  bad_lines: {type: stdout, inputs: [parse.dropped]}
"""


def _problems(write_pipeline: Callable[[str], Path], text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_pipeline(write_pipeline(text))
    return [issue.render().split("  ", 1)[1] + f" @{issue.line}:{issue.column}" for issue in caught.value.issues]


def test_inputs_default_to_the_node_declared_just_before(write_pipeline: Callable[[str], Path]) -> None:
    spec = load_pipeline(write_pipeline(GOOD))
    inputs = {name: [str(ref) for ref in node.inputs] for name, node in spec.nodes.items()}
    assert inputs == {
        "logs": [],
        "parse": ["logs"],
        "errors_only": ["parse"],
        "tidy": ["parse"],
        "lake": ["errors_only", "tidy"],
        "bad_lines": ["parse.dropped"],
        "dead_letter": [],
    }
    assert spec.nodes["bad_lines"].inputs == [PortRef("parse", "dropped")]
    assert spec.lake_dir == spec.file.parent / "lake"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            GOOD.replace("type: json}", "type: jsn}"),
            ["stages.parse.type  unknown stage type 'jsn'; did you mean 'json'? (node 'parse') @5:17"],
        ),
        (
            GOOD.replace('condition: "level', 'conditon: "level'),
            [
                "stages.errors_only.condition  missing required key 'condition' (node 'errors_only', type filter) @6:3",
                "stages.errors_only.conditon  unknown key 'conditon'; did you mean 'condition'? (node 'errors_only', type filter) @6:31",
            ],
        ),
        (
            GOOD.replace("inputs: [parse]", "inputs: [prase]"),
            ["stages.tidy.inputs[0]  input 'prase' names no node; did you mean 'parse'? (node 'tidy', type eval) @7:31"],
        ),
        (
            GOOD.replace("[parse.dropped]", "[parse.late]"),
            ["sinks.bad_lines.inputs[0]  input 'parse.late': json node 'parse' has no output 'late' (its extra outputs: 'parse.dropped') (node 'bad_lines', type stdout) @10:38"],
        ),
        (
            GOOD.replace("inputs: [parse]", "inputs: [lake]"),
            ["stages.tidy.inputs[0]  input 'lake' is a sink; sinks have no output (node 'tidy', type eval) @7:31"],
        ),
        (
            GOOD.replace("pipeline: app", "pipeline: app\nlakes: here"),
            ["lakes  unknown top-level key 'lakes'; did you mean 'lake'? @2:1"],
        ),
        (
            GOOD.replace("  tidy:", "  logs:"),
            ["stages.logs  node name 'logs' is already used by source 'logs' (node 'logs') @7:3"],
        ),
        (
            GOOD.replace("batch_size", "x").replace("paths: [app.log]", "paths: [app.log], batch_size: lots"),
            ["sources.logs.batch_size  Input should be a valid integer, unable to parse string as an integer (node 'logs', type file) @3:52"],
        ),
    ],
    ids=["unknown-type", "misspelt-key", "dangling-input", "unknown-port", "sink-as-input", "top-level-typo", "duplicate-name", "wrong-value-type"],
)
def test_problems_name_node_key_and_line(write_pipeline: Callable[[str], Path], text: str, expected: list[str]) -> None:
    assert _problems(write_pipeline, text) == expected


def test_all_problems_are_reported_together_in_file_order(write_pipeline: Callable[[str], Path]) -> None:
    text = GOOD.replace("type: json}", "type: jsn}").replace("dataset: app", "datset: app").replace("pipeline: app", "pipeline: app\nlakes: x")
    with pytest.raises(SpecError) as caught:
        load_and_compile(write_pipeline(text))
    issues = caught.value.issues
    assert [(issue.line, issue.dotted_path) for issue in issues] == [
        (2, "lakes"),
        (4, "sources.logs.paths"),  # found by constructing the file source: app.log does not exist
        (6, "stages.parse.type"),
        (10, "sinks.lake.datset"),
    ]
    assert "file 'app.log'" in issues[1].message and issues[1].message.endswith("does not exist")
    assert caught.value.render().splitlines()[-1].startswith("4 problems in ")


def test_missing_pipeline_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        load_pipeline(tmp_path / "nope.yaml")


def test_sources_and_sinks_are_required(write_pipeline: Callable[[str], Path]) -> None:
    problems = _problems(write_pipeline, "pipeline: empty\nstages: {}\n")
    assert problems == ["sources  missing required key 'sources' @1:1", "sinks  missing required key 'sinks' @1:1"]
