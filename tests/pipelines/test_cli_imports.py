"""What each `loglake` command imports: only what it uses (start-up time; the numbers are in benchmarks/startup.py).

Every command builds the whole argument parser, so a module that adds a command must not import its engine at
the top; a pipeline loads only the libraries its nodes need. Each case runs the CLI in a fresh interpreter and
lists the modules it ended with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_PROBE = """
import atexit, json, sys
from loglake.pipelines.cli import main
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.exit(main(sys.argv[1:]))
"""

_ENGINES = ("pyarrow", "numpy", "duckdb", "bytewax", "confluent_kafka", "yaml")
"""Libraries `--help` and the commands that never build a pipeline have no use for."""

SQL_FREE = """
pipeline: plain
sources:
  logs: {type: file, paths: [app.log]}
stages:
  parse: {type: json}
  ua: {type: user_agent, field: agent, target: ua}
sinks:
  out: {type: stdout}
"""


def _imported(*args: str, cwd: Path | None = None) -> set[str]:
    """Top-level packages loaded by `loglake ARGS` run in its own interpreter (whatever its exit status)."""
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, cwd=cwd)
    modules: list[str] = json.loads(done.stderr.splitlines()[-1])
    return set(modules)


def _packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    "args",
    [["--help"], ["run", "--help"], ["replay", "--help"], ["compact", "--help"], ["produce", "--help"], ["parse", "json", "--help"]],
    ids=["help", "run-help", "replay-help", "compact-help", "produce-help", "parse-help"],
)
def test_the_parser_alone_imports_no_engine_library(args: list[str]) -> None:
    assert _packages(_imported(*args)) & set(_ENGINES) == set()


def test_validate_of_a_pipeline_without_sql_imports_neither_duckdb_nor_bytewax_nor_kafka(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text('{"agent": "curl/8.0"}\n')
    (tmp_path / "plain.yaml").write_text(SQL_FREE)
    modules = _imported("validate", "plain.yaml", cwd=tmp_path)
    assert "loglake.operators.user_agent" in modules  # the pipeline was compiled, stages built
    assert _packages(modules) & {"duckdb", "bytewax", "confluent_kafka"} == set()


def test_the_user_agent_stage_compiles_no_python_rule_up_front(tmp_path: Path) -> None:
    """ua-parser's lazy rules (a regex compiled when the Rust engine first points at it), not its ~1,300 compiled
    ones; and user_agents, which the stage uses for its device flags, is imported all the same."""
    (tmp_path / "app.log").write_text('{"agent": "curl/8.0"}\n')
    (tmp_path / "plain.yaml").write_text(SQL_FREE)
    modules = _imported("validate", "plain.yaml", cwd=tmp_path)
    assert "ua_parser_builtins.lazy" in modules and "user_agents.parsers" in modules
    assert "ua_parser_builtins.matchers" not in modules
