"""`loglake test PIPELINE`: the command's arguments; the cases run in pipelines/pipeline_tests.py.

Every `loglake` command imports this module to build its parser, so the test runner (pyarrow, the compiler) is
imported when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_test_command"]


def add_test_command(commands: Any) -> None:
    """Add `test` to the CLI's sub-command group."""
    test = commands.add_parser("test", help="run a pipeline's declared tests in-process (exit 1 when one fails)")
    test.add_argument("pipeline", help="pipeline YAML file; tests come from its 'tests:' key and <stem>.tests.yaml")
    test.set_defaults(handler=_cmd_test)


def _cmd_test(args: argparse.Namespace) -> int:
    from loglake.pipelines.pipeline_tests import run_tests_command

    return run_tests_command(args)
