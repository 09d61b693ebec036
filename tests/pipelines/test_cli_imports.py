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
    assert "ua_parser_builtins.regexes" not in modules  # the legacy API's rules, for user_agents' own parse()


_LEGACY_PARSE = """
import sys
import loglake.operators.user_agent
assert "ua_parser_builtins.regexes" not in sys.modules
import user_agents
from ua_parser import user_agent_parser
agent = user_agents.parse("Mozilla/5.0 (iPhone; CPU iPhone OS 5_1 like Mac OS X) AppleWebKit/534.46 (KHTML, like Gecko) Version/5.1 Mobile/9B179 Safari/7534.48.3")
print(agent.is_mobile, agent, user_agent_parser.Parse("curl/8.4.0")["user_agent"]["family"], "ua_parser_builtins.regexes" in sys.modules)
"""


def test_user_agents_own_parse_still_works_beside_the_stage() -> None:
    """The stage leaves ua-parser's legacy module unimported until something uses it (a Python stage, say)."""
    done = subprocess.run([sys.executable, "-c", _LEGACY_PARSE], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "iPhone", "/", "iOS", "5.1", "/", "Mobile", "Safari", "5.1", "curl", "True"]
