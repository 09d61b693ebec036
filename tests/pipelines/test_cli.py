"""The CLI's user-facing contract: exit codes and messages, no tracebacks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loglake.pipelines.cli import main

PIPELINE = """
pipeline: cli
sources:
  logs: {type: file, paths: [app.log]}
stages:
  parse: {type: json}
  keep:
    type: filter
    condition: "level = 'error' AND lenght(message) > 3"
sinks:
  out: {type: stdout}
"""


def test_validate_reports_bad_sql_at_its_line_with_exit_2(
    write_pipeline: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app.log").write_text('{"level": "error", "message": "boom"}\n')
    path = write_pipeline(PIPELINE)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith(f"{path}:8:16  stages.keep.condition  ")
    assert "lenght" in first and "did you mean 'length'" in first and "(node 'keep', type filter)" in first
    assert err.splitlines()[-1] == f"1 problem in {path}; nothing was started."
    assert "Traceback" not in err


def test_validate_reports_a_missing_input_file(write_pipeline: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = write_pipeline(PIPELINE.replace("lenght", "length"))
    assert main(["validate", str(path)]) == 2
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"{path}:3:") and "sources.logs.paths" in first and "app.log" in first


def test_run_prints_records_to_stdout_sink(
    write_pipeline: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app.log").write_text('{"level": "ERROR", "message": "disk full"}\n{"level": "info", "message": "ok"}\nnot json\n')
    path = write_pipeline(PIPELINE.replace("lenght", "length"))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert '"message":"disk full"' in out and '"level":"error"' in out and '"ok"' not in out
    assert "pipeline cli finished" in out
    assert (tmp_path / "lake" / "dead_letter").is_dir()


def test_schema_command_prints_the_committed_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    committed = (Path(__file__).resolve().parents[2] / "schemas" / "pipeline.schema.json").read_text()
    assert capsys.readouterr().out == committed


def test_unknown_dataset_in_query_lists_what_exists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "--lake", str(tmp_path), "SELECT * FROM app"]) == 1
    err = capsys.readouterr().err
    assert "app" in err and "datasets you can query: none (is the lake empty?)" in err
