"""A shell pipeline: lines on stdin, JSON on stdout, the summary kept off stdout's records."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import Runner

PIPELINE = """
pipeline: pipe
sources:
  lines: {type: stdin}
stages:
  parse: {type: json}
  loud: {type: filter, condition: "level IN ('warn', 'error')"}
sinks:
  out: {type: stdout}
dead_letter: {type: stdout}
"""


def test_stdin_through_json_and_filter_to_stdout(loglake: Runner, tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    lines = [
        '{"level": "INFO", "msg": "started"}',
        '{"level": "Warning", "msg": "disk at 91%"}',
        "plain text",
        '{"level": "ERROR", "msg": "disk full", "ts": "2026-11-21T10:00:00Z"}',
    ]
    done = loglake("run", "pipeline.yaml", input="\n".join(lines) + "\n")
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    by_message = {record.get("msg", record["message"]): record for record in records}
    assert set(by_message) == {"disk at 91%", "disk full", "plain text"}
    assert by_message["disk at 91%"]["level"] == "warn"
    assert by_message["disk full"]["_line"] == 4 and by_message["disk full"]["source"] == "stdin"
    assert by_message["plain text"]["_error_node"] == "parse"
    assert "4 records read" in done.stdout
