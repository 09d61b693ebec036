"""The `eval` stage: computed, renamed and removed columns, and records whose expression fails."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from tests.support import batch_of, build_stage, only_spec_issue

ACCESS = batch_of(
    clientip=["83.149.9.216", "66.249.73.135", "93.114.45.13"],
    verb=["GET", "get", "POST"],
    response=["200", "301", "404"],
    bytes=[203023, None, 3638],
    agent=["Mozilla/5.0 (Macintosh)", "Googlebot/2.1", "curl/7.29.0"],
)
"""Records shaped like grok output for Apache access-log lines (every field a string but bytes)."""


def _rows(batch: pa.RecordBatch, *names: str) -> list[tuple[Any, ...]]:
    return list(zip(*(batch.column(name).to_pylist() for name in names)))


@pytest.mark.parametrize(
    "snippet, names, expected",
    [
        ("fields: {status: 'CAST(response AS INTEGER)'}", ["status"], [(200,), (301,), (404,)]),
        ("fields: {verb: upper(verb)}", ["verb"], [("GET",), ("GET",), ("POST",)]),
        ("fields: {kb: 'bytes / 1024', ok: \"response < '400'\"}", ["kb", "ok"], [(pytest.approx(198.264648), True), (None, True), (pytest.approx(3.552734), False)]),
        ("fields: {env: \"'prod'\"}", ["env"], [("prod",), ("prod",), ("prod",)]),
        ("fields: {verb: lower(verb), shout: upper(verb)}", ["verb", "shout"], [("get", "GET"), ("get", "GET"), ("post", "POST")]),
        ("fields: {missing: \"coalesce(referer, '-')\"}", ["missing"], [("-",), ("-",), ("-",)]),
    ],
    ids=["add-cast", "replace-in-place", "two-new", "constant", "all-read-the-input", "missing-column-is-null"],
)
def test_fields_add_or_replace_columns(snippet: str, names: list[str], expected: list[tuple[Any, ...]]) -> None:
    out = build_stage(f"{{type: eval, {snippet}}}").process(ACCESS)
    assert _rows(out.main, *names) == expected
    assert out.main.column("clientip").to_pylist() == ACCESS.column("clientip").to_pylist()


def test_replaced_column_keeps_its_position_and_new_ones_are_appended() -> None:
    out = build_stage("{type: eval, fields: {response: 'CAST(response AS INTEGER)', status_class: 'CAST(response AS INTEGER) // 100'}}").process(ACCESS)
    assert out.main.schema.names == ["clientip", "verb", "response", "bytes", "agent", "status_class"]
    assert out.main.schema.field("response").type == pa.int32()
    assert out.main.column("status_class").to_pylist() == [2, 3, 4]


@pytest.mark.parametrize(
    "snippet, names",
    [
        ("rename: {clientip: client_ip}", ["client_ip", "verb", "response", "bytes", "agent"]),
        ("rename: {clientip: verb, verb: clientip}", ["verb", "clientip", "response", "bytes", "agent"]),
        ("rename: {agent: verb}", ["clientip", "response", "bytes", "verb"]),
        ("rename: {referer: ref}", ["clientip", "verb", "response", "bytes", "agent"]),
        ("remove: [agent, bytes, referer]", ["clientip", "verb", "response"]),
        ("fields: {bytes: 'coalesce(bytes, 0)'}, rename: {bytes: size}, remove: [agent]", ["clientip", "verb", "response", "size"]),
    ],
    ids=["rename", "swap", "onto-existing-replaces-it", "missing-is-noop", "remove-missing-is-noop", "fields-rename-remove"],
)
def test_rename_and_remove(snippet: str, names: list[str]) -> None:
    out = build_stage(f"{{type: eval, {snippet}}}").process(ACCESS)
    assert out.main.schema.names == names


def test_swap_moves_values_with_names() -> None:
    out = build_stage("{type: eval, rename: {clientip: verb, verb: clientip}}").process(ACCESS)
    assert out.main.column("verb").to_pylist() == ["83.149.9.216", "66.249.73.135", "93.114.45.13"]
    assert out.main.column("clientip").to_pylist() == ["GET", "get", "POST"]


def test_fields_then_rename_then_remove_values() -> None:
    out = build_stage("{type: eval, fields: {bytes: 'coalesce(bytes, 0)'}, rename: {bytes: size}, remove: [agent]}").process(ACCESS)
    assert out.main.column("size").to_pylist() == [203023, 0, 3638]


BAD = batch_of(line=["a", "b", "c"], response=["200", "-", "404"])


@pytest.mark.parametrize(
    "on_error, main_lines, main_status",
    [("route", ["a", "c"], [200, 404]), ("keep", ["a", "c", "b"], [200, 404, None]), ("discard", ["a", "c"], [200, 404])],
    ids=["route", "keep", "discard"],
)
def test_failing_cast_sends_only_that_record_to_on_error(on_error: str, main_lines: list[str], main_status: list[Any]) -> None:
    stage = build_stage(f"{{type: eval, fields: {{status: 'CAST(response AS INTEGER)'}}, on_error: {on_error}}}", name="typed")
    out = stage.process(BAD)
    assert out.main.column("line").to_pylist() == main_lines
    assert out.main.column("status").to_pylist() == main_status
    assert out.discarded == (1 if on_error == "discard" else 0)
    if on_error == "route":
        dropped = out.extra["dropped"]
        assert dropped.to_pylist() == [{
            "line": "b",
            "response": "-",
            "_error": "fields.status: Conversion Error: Could not convert string '-' to INT32 when casting from source column response",
            "_error_node": "typed",
        }]
    if on_error == "keep":
        assert out.main.column("_error_node").to_pylist() == [None, None, "typed"]


def test_keep_preserves_a_replaced_column_of_unchanged_type() -> None:
    stage = build_stage("{type: eval, fields: {response: \"CASE WHEN response = '-' THEN error('no status') ELSE response END\"}, on_error: keep}")
    out = stage.process(BAD)
    assert out.main.column("response").to_pylist() == ["200", "404", "-"]
    assert "no status" in out.main.column("_error").to_pylist()[2]


@pytest.mark.parametrize(
    "snippet, path, reason",
    [
        ("{type: eval}", (), "give at least one of 'fields', 'rename' or 'remove'"),
        ("{type: eval, fields: {}, remove: []}", (), "give at least one of"),
        ("{type: eval, fields: {status: 'CAST(response AS INTEGR)'}}", ("fields", "status"), "INTEGR"),
        ("{type: eval, fields: {status: 'lowr(response)'}}", ("fields", "status"), "did you mean 'lower'?"),
        ("{type: eval, rename: {a: c, b: c}}", (), "'a' and 'b' are both renamed to 'c'"),
        ("{type: eval, fields: {c: '1'}, rename: {a: c}}", (), "would overwrite the column 'c' that 'fields' computes"),
        ("{type: eval, fields: {c: '1'}, remove: [c]}", (), "'c' is computed by 'fields' and then removed"),
        ("{type: eval, rename: {a: b}, remove: [b]}", (), "'b' is the new name of 'a'"),
    ],
    ids=["nothing-to-do", "all-empty", "bad-type", "unknown-function", "rename-collision", "rename-over-field", "remove-field", "remove-rename-target"],
)
def test_bad_config_is_a_spec_error(snippet: str, path: tuple[str, ...], reason: str) -> None:
    issue = only_spec_issue(snippet)
    assert issue.path == path
    assert reason in issue.message


def test_empty_batch_gets_the_new_columns_typed() -> None:
    out = build_stage("{type: eval, fields: {status: 'CAST(response AS INTEGER)'}, remove: [agent]}").process(ACCESS.slice(0, 0))
    assert out.main.num_rows == 0
    assert out.main.schema.field("status").type == pa.int32()
    assert "agent" not in out.main.schema.names
