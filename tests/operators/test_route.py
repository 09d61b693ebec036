"""The `route` stage on real Apache access-log lines, checked against counts computed in plain Python."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import loglake.operators.route  # noqa: F401 (registers the `route` type until the registry lists it)
from loglake.pipelines.runner import run_pipeline
from loglake.pipelines.spec import load_pipeline
from loglake.schemas.errors import SpecError
from loglake.schemas.stage import StageOutput
from tests.support import APACHE_LOG, batch_of, build_stage, only_spec_issue

ERRORS = "response >= 400"
BOTS = "agent ILIKE '%bot%'"
_COMBINED = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "[^"]*" (\d{3}) \S+ "[^"]*" "([^"]*)"$')


def _expected() -> list[tuple[bool, bool]]:
    """(is error, is bot) per line that is a complete combined-format line, read without loglake."""
    flags = []
    for line in APACHE_LOG.read_text(encoding="utf-8").splitlines():
        match = _COMBINED.match(line)
        if match:
            flags.append((int(match.group(1)) >= 400, "bot" in match.group(2).lower()))
    return flags


@pytest.fixture(scope="module")
def access() -> pa.RecordBatch:
    """The 10,000 lines parsed by the `apache_combined` preset (one truncated line fails to parse)."""
    lines = APACHE_LOG.read_text(encoding="utf-8").splitlines()
    parsed = build_stage("{type: apache_combined}").process(batch_of(message=lines))
    assert parsed.extra["dropped"].num_rows == 1
    return parsed.main


def _count(output: StageOutput, port: str) -> int:
    batch = output.extra.get(port)
    return batch.num_rows if batch is not None else 0


def _route(routes: dict[str, str], mode: str, **options: str) -> Any:
    body = ", ".join(f'{name}: "{condition}"' for name, condition in routes.items())
    extra = "".join(f", {key}: {value}" for key, value in options.items())
    return build_stage(f"{{type: route, mode: {mode}, routes: {{{body}}}{extra}}}", name="split")


EXPECTED = _expected()
N_ERRORS = sum(error for error, _ in EXPECTED)
N_BOTS = sum(bot for _, bot in EXPECTED)
N_BOTH = sum(error and bot for error, bot in EXPECTED)
N_NEITHER = sum(not error and not bot for error, bot in EXPECTED)


@pytest.mark.parametrize(
    "routes, mode, counts",
    [
        ({"errors": ERRORS, "bots": BOTS}, "all", {"errors": N_ERRORS, "bots": N_BOTS, "_unmatched": N_NEITHER}),
        ({"errors": ERRORS, "bots": BOTS}, "first", {"errors": N_ERRORS, "bots": N_BOTS - N_BOTH, "_unmatched": N_NEITHER}),
        ({"bots": BOTS, "errors": ERRORS}, "first", {"bots": N_BOTS, "errors": N_ERRORS - N_BOTH, "_unmatched": N_NEITHER}),
        (
            {"errors": ERRORS, "bots": BOTS, "rest": "true"},
            "first",
            {"errors": N_ERRORS, "bots": N_BOTS - N_BOTH, "rest": N_NEITHER, "_unmatched": 0},
        ),
        (
            {"errors": ERRORS, "bots": BOTS, "rest": "true"},
            "all",
            {"errors": N_ERRORS, "bots": N_BOTS, "rest": len(EXPECTED), "_unmatched": 0},
        ),
    ],
    ids=["all", "first-errors-first", "first-bots-first", "first-with-rest", "all-with-rest"],
)
def test_routes_real_access_log(access: pa.RecordBatch, routes: dict[str, str], mode: str, counts: dict[str, int]) -> None:
    assert access.num_rows == len(EXPECTED) == 9_999
    assert 0 < N_BOTH < N_ERRORS < N_BOTS < N_NEITHER, "the data exercises every combination"
    output = _route(routes, mode).process(access)
    assert {port: _count(output, port) for port in counts} == counts
    assert output.main is access, "the main output passes every record on unchanged"
    assert "dropped" not in output.extra
    for port in ("errors", "bots"):
        assert output.extra[port].schema == access.schema
    assert min(output.extra["errors"].column("response").to_pylist()) >= 400
    assert all("bot" in agent.lower() for agent in output.extra["bots"].column("agent").to_pylist())


def test_first_mode_sends_each_record_to_exactly_one_port_in_order(access: pa.RecordBatch) -> None:
    output = _route({"errors": ERRORS, "bots": BOTS}, "first").process(access)
    messages = access.column("message").to_pylist()
    expected = {
        "errors": [m for m, (error, _) in zip(messages, EXPECTED) if error],
        "bots": [m for m, (error, bot) in zip(messages, EXPECTED) if bot and not error],
        "_unmatched": [m for m, (error, bot) in zip(messages, EXPECTED) if not error and not bot],
    }
    assert {port: output.extra[port].column("message").to_pylist() for port in expected} == expected


SIZES = batch_of(size=["5", "20", "x", None, "300", "y"], line=[1, 2, 3, 4, 5, 6])
"""Records whose `CAST(size AS INTEGER)` fails for rows 3 and 6 (null is not an error: it counts as false)."""


@pytest.mark.parametrize("mode", ["all", "first"])
def test_a_failing_condition_routes_the_record_to_dropped(mode: str) -> None:
    output = _route({"big": "CAST(size AS INTEGER) > 10", "small": "CAST(size AS INTEGER) <= 10"}, mode).process(SIZES)
    assert output.main is SIZES
    assert output.extra["big"].column("line").to_pylist() == [2, 5]
    assert output.extra["small"].column("line").to_pylist() == [1]
    assert output.extra["_unmatched"].column("line").to_pylist() == [4], "NULL is false, not an error"
    dropped = output.extra["dropped"]
    assert dropped.column("line").to_pylist() == [3, 6]
    assert dropped.column("_error_node").to_pylist() == ["split", "split"]
    assert dropped.column("_error").to_pylist() == [
        f"routes.big: Conversion Error: Could not convert string '{value}' to INT32 when casting from source column size"
        for value in ("x", "y")
    ]


def test_on_error_keep_marks_failed_records_on_the_main_output() -> None:
    output = _route({"big": "CAST(size AS INTEGER) > 10"}, "all", on_error="keep").process(SIZES)
    assert output.main.column("line").to_pylist() == [1, 2, 3, 4, 5, 6]
    errors = output.main.column("_error").to_pylist()
    assert [error is not None for error in errors] == [False, False, True, False, False, True]
    assert "dropped" not in output.extra
    assert output.extra["big"].column("line").to_pylist() == [2, 5]
    assert output.extra["_unmatched"].column("line").to_pylist() == [1, 4]


def test_on_error_discard_counts_failed_records() -> None:
    output = _route({"big": "CAST(size AS INTEGER) > 10"}, "all", on_error="discard").process(SIZES)
    assert output.discarded == 2
    assert output.main is SIZES
    assert set(output.extra) == {"big", "_unmatched"}


def test_missing_columns_read_as_null_so_records_are_unmatched() -> None:
    output = _route({"errors": ERRORS}, "all").process(SIZES)
    assert set(output.extra) == {"_unmatched"}
    assert output.extra["_unmatched"] is SIZES


def test_empty_batch_passes_through() -> None:
    empty = SIZES.slice(0, 0)
    output = _route({"errors": ERRORS}, "all").process(empty)
    assert output.main.num_rows == 0 and output.extra == {}


@pytest.mark.parametrize(
    "routes, path, message",
    [
        ('{"5xx": "response >= 500"}', ("routes", "5xx"), "route name '5xx' must start with a letter or '_'"),
        ('{server-errors: "response >= 500"}', ("routes", "server-errors"), "route name 'server-errors' must start"),
        ('{dropped: "response >= 500"}', ("routes", "dropped"), "route name 'dropped' is reserved"),
        ('{late: "response >= 500"}', ("routes", "late"), "route name 'late' is reserved"),
        ('{_unmatched: "true"}', ("routes", "_unmatched"), "route name '_unmatched' is reserved"),
        ('{errors: "response >= = 500"}', ("routes", "errors"), 'invalid SQL expression "response >= = 500"'),
        ('{errors: "count(*) > 1"}', ("routes", "errors"), "aggregate function 'count'"),
        ("{}", ("routes",), "at least 1 item"),
    ],
    ids=["digit-first", "dash", "dropped", "late", "unmatched", "bad-sql", "aggregate", "empty"],
)
def test_bad_routes_are_spec_errors(routes: str, path: tuple[str, ...], message: str) -> None:
    issue = only_spec_issue(f"{{type: route, routes: {routes}}}")
    assert issue.path == path
    assert message in issue.message


def test_bad_mode_lists_the_valid_ones() -> None:
    issue = only_spec_issue('{type: route, mode: any, routes: {errors: "true"}}')
    assert issue.path == ("mode",)
    assert "'all' or 'first'" in issue.message


def test_routes_are_output_ports_of_the_node(write_pipeline: Callable[..., Path]) -> None:
    text = """
    pipeline: ports
    sources:
      logs: {type: file, paths: [access.log]}
    stages:
      parse: {type: apache_combined}
      split: {type: route, routes: {errors: "response >= 500", bots: "agent ILIKE '%bot%'"}}
      shape: {type: filter, condition: "true"}
    sinks:
      alerts: {type: stdout, inputs: [split.errors]}
      crawlers: {type: stdout, inputs: [split.bots, split._unmatched]}
      everything: {type: stdout, inputs: [INPUT]}
    """
    spec = load_pipeline(write_pipeline(text.replace("INPUT", "shape")))
    assert spec.nodes["split"].ports == ("errors", "bots", "_unmatched", "dropped")
    assert [str(ref) for ref in spec.nodes["shape"].inputs] == ["split"], "the main output feeds the next stage"
    with pytest.raises(SpecError) as caught:
        load_pipeline(write_pipeline(text.replace("INPUT", "split.error")))
    [issue] = caught.value.issues
    assert issue.message == (
        "input 'split.error': route node 'split' has no output 'error' "
        "(its extra outputs: 'split.errors', 'split.bots', 'split._unmatched', 'split.dropped')"
    )
    assert issue.line == 11


def _rows_routed_into(write_pipeline: Callable[..., Path], lake: Path, inputs: dict[str, str]) -> dict[str, int]:
    """Run the real log through `apache_combined` and a first-mode route into one Parquet dataset per `inputs`
    entry (dataset name → input); the records each dataset holds."""
    sinks = "\n".join(
        f"  {name}: {{type: parquet, inputs: [{source}], dataset: {name}, partition_by: []}}" for name, source in inputs.items()
    )
    routes = f'{{errors: "{ERRORS}", bots: "{BOTS}"}}'
    run_pipeline(
        write_pipeline(
            "pipeline: routed\n"
            f'sources:\n  logs: {{type: file, paths: ["{APACHE_LOG}"], batch_size: 2000}}\n'
            f"stages:\n  parse: {{type: apache_combined}}\n  split: {{type: route, mode: first, routes: {routes}}}\n"
            f"sinks:\n{sinks}\n"
        )
    )
    return {name: pq.read_table(lake / name).num_rows for name in inputs}


def test_route_ports_feed_sinks_in_a_real_run(write_pipeline: Callable[..., Path], tmp_path: Path) -> None:
    rows = _rows_routed_into(write_pipeline, tmp_path / "lake", {"errors": "split.errors", "bots": "split.bots", "everything": "split"})
    assert rows == {"errors": N_ERRORS, "bots": N_BOTS - N_BOTH, "everything": len(EXPECTED)}


def test_only_the_routes_read_are_built_and_dropped_always_is(access: pa.RecordBatch) -> None:
    stage = _route({"errors": ERRORS, "bots": BOTS}, "first")
    stage.read_ports(frozenset({"bots", "dropped"}))
    output = stage.process(access)
    assert set(output.extra) == {"bots"}, "no copy is made for the unread errors and _unmatched"
    assert _count(output, "bots") == N_BOTS - N_BOTH, "an unread route still takes its records first"
    failing = _route({"big": "CAST(size AS INTEGER) > 10"}, "all")
    failing.read_ports(frozenset())
    assert set(failing.process(SIZES).extra) == {"dropped"}


def test_a_run_builds_only_the_routes_some_node_reads(write_pipeline: Callable[..., Path], tmp_path: Path) -> None:
    rows = _rows_routed_into(write_pipeline, tmp_path / "lake", {"bots": "split.bots"})
    assert rows == {"bots": N_BOTS - N_BOTH}, "the unread errors route still takes its records first"
