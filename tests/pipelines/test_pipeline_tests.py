"""`loglake test`: declared pipeline tests run in-process on real stages, with diffs, counts, ports and exit codes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from loglake.pipelines.cli import main
from tests.conftest import EXAMPLES, REPO

APP_JSON = EXAMPLES / "app-json" / "pipeline.yaml"

PIPELINE = """
pipeline: unit
sources:
  logs: {type: file, paths: [app.log]}
stages:
  events: {type: multiline, pattern: '^[[:space:]]+at ', match: after}
  parse: {type: json}
  errors: {type: filter, condition: "level = 'error'"}
sinks:
  out: {type: parquet, dataset: out}
tests:
  - name: errors reach the lake
    input:
      lines: ['{"level": "ERR", "message": "disk full"}', '{"level": "info", "message": "ok"}', 'not json']
    expect:
      - node: out
        records:
          - {level: error, message: disk full, _line: 1}
        absent: [_error]
      - node: parse.dropped
        count: 1
"""


@pytest.fixture
def pipeline(write_pipeline: Callable[[str], Path], tmp_path: Path) -> Callable[[str], Path]:
    """Write the unit pipeline (with `old` replaced by `new` in it) next to an empty log file."""

    def write(old: str = "", new: str = "") -> Path:
        (tmp_path / "app.log").write_text("")
        return write_pipeline(PIPELINE.replace(old, new) if old else PIPELINE)

    return write


def test_the_example_tests_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(APP_JSON)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "ok    a JSON line is parsed and shaped into the lake's columns",
        "ok    crawlers are filtered out",
        "ok    a line that is not JSON goes to parse.dropped, and on to the dead letters",
        "ok    levels are normalised",
        "4 passed, 0 failed",
    ]


def test_inline_tests_pass_and_write_nothing(pipeline: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(pipeline())]) == 0
    assert capsys.readouterr().out.splitlines() == ["ok    errors reach the lake", "1 passed, 0 failed"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log", "pipeline.yaml"], "no lake, no dead letters"


def test_a_wrong_value_shows_a_diff_and_exits_1(pipeline: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = pipeline("{level: error, message: disk full, _line: 1}", "{level: err, message: disk full, _line: 1}")
    assert main(["test", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "FAIL  errors reach the lake",
        "  out:",
        "    --- expected",
        "    +++ actual",
        '    -{"level": "err", "message": "disk full", "_line": 1}',
        '    +{"level": "error", "message": "disk full", "_line": 1}',
        "0 passed, 1 failed",
    ]


def test_absent_count_and_port_failures_are_reported(pipeline: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = pipeline("absent: [_error]", "absent: [_line]\n        count: 2")
    path.write_text(path.read_text().replace("count: 1\n", "count: 0\n"))
    assert main(["test", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "FAIL  errors reach the lake",
        "  out:",
        "    expected 2 records, got 1 record",
        "    record 1 has _line = 1, which should be absent",
        "  parse.dropped:",
        "    expected 0 records, got 1 record",
        "0 passed, 1 failed",
    ]


def test_a_missing_record_is_a_minus_line(pipeline: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = pipeline("          - {level: error, message: disk full, _line: 1}\n", "          - {level: error}\n          - {level: info}\n")
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[4:7] == ['     {"level": "error"}', '    -{"level": "info"}', "0 passed, 1 failed"]


def test_a_stage_that_holds_records_back_releases_them_at_the_end(
    pipeline: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = pipeline("    expect:\n      - node: out", "    expect:\n      - node: events\n        count: 3\n      - node: out")
    path.write_text(path.read_text().replace("'not json']", "'not json', '  at Main.run']"))
    assert main(["test", str(path)]) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.endswith("1 passed, 0 failed\n")


def test_input_into_a_stage_and_timestamps_as_instants(pipeline: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    case = """
  - name: straight into the filter
    input:
      node: errors
      records: [{level: error, timestamp: "2024-03-01T12:00:00+01:00"}, {level: info}]
    expect:
      - {node: out, records: [{timestamp: "2024-03-01T11:00:00Z", message: null}]}
      - {node: parse.dropped, count: 0}
"""
    path = pipeline()
    path.write_text(path.read_text() + case)
    assert main(["test", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 passed, 0 failed"


def test_an_unknown_node_is_a_spec_error_with_its_line(write_pipeline: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = APP_JSON.parent / "pipeline.yaml"
    tests = write_pipeline("tests:\n  - name: typo\n    input: {lines: [x]}\n    expect:\n      - {node: lakes, count: 1}\n", "pipeline.tests.yaml")
    pipeline = write_pipeline(path.read_text().replace("data/*.jsonl", f"{path.parent}/data/*.jsonl"))
    assert main(["test", str(pipeline)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{tests}:5:16  tests[0].expect[0].node  expected node 'lakes' is not in pipeline app-json; did you mean 'lake'?"
    assert err[-1] == f"1 problem in {tests}; nothing was started."


def test_every_problem_of_a_malformed_case_is_listed(pipeline: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    case = "  - name: second\n    input: {node: parsed, lines: [x]}\n    expect: [{node: out, count: 1}]\n"
    path = pipeline()
    path.write_text(path.read_text().replace("count: 1", "cont: 1") + case)
    assert main(["test", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:20:9  tests[0].expect[1].cont  unknown key 'cont' in a test case",
        f"{path}:22:19  tests[1].input.node  input node 'parsed' is no source or stage of pipeline unit; did you mean 'parse'?",
        f"2 problems in {path}; nothing was started.",
    ]


@pytest.mark.e2e
def test_the_command_runs_as_a_subprocess() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loglake.pipelines.cli", "test", "examples/app-json/pipeline.yaml"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "4 passed, 0 failed"
