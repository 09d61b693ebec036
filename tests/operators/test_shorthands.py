"""The shorthand stages `rename`, `cast`, `drop_fields` and `keep_fields`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pytest

from loglake.schemas.records import TIMESTAMP_TYPE
from tests.support import batch_of, build_stage, only_spec_issue

ACCESS = batch_of(
    clientip=["83.149.9.216", "66.249.73.135", "93.114.45.13"],
    response=["200", "301", "404"],
    bytes=["203023", "-", "3638"],
    agent=["Mozilla/5.0 (Macintosh)", "Googlebot/2.1", "curl/7.29.0"],
)
"""Grok-shaped fields of Apache access-log lines from the shared sample (every field text)."""


@pytest.mark.parametrize(
    "snippet, names",
    [
        ("{type: rename, fields: {clientip: client_ip}}", ["client_ip", "response", "bytes", "agent"]),
        ("{type: rename, fields: {clientip: agent, agent: clientip}}", ["agent", "response", "bytes", "clientip"]),
        ("{type: rename, fields: {referrer: ref}}", ["clientip", "response", "bytes", "agent"]),
        ("{type: drop_fields, fields: [agent, referrer]}", ["clientip", "response", "bytes"]),
        ("{type: keep_fields, fields: [bytes, clientip, referrer]}", ["clientip", "bytes", "timestamp", "_error"]),
    ],
    ids=["rename", "swap", "rename-missing", "drop", "keep-plus-timestamp-and-metadata"],
)
def test_column_shorthands(snippet: str, names: list[str]) -> None:
    batch = ACCESS
    if "keep_fields" in snippet:
        batch = batch.append_column("timestamp", pa.nulls(3, TIMESTAMP_TYPE)).append_column("_error", pa.nulls(3, pa.string()))
    out = build_stage(snippet).process(batch).main
    assert out.schema.names == names


def test_swap_moves_values() -> None:
    out = build_stage("{type: rename, fields: {clientip: agent, agent: clientip}}").process(ACCESS).main
    assert out.column("agent").to_pylist() == ACCESS.column("clientip").to_pylist()


UTC = timezone.utc


@pytest.mark.parametrize(
    "kind, values, expected, arrow_type",
    [
        ("int", ["200", " 404", None], [200, 404, None], pa.int64()),
        ("float", ["1.5", "2", "-3e2"], [1.5, 2.0, -300.0], pa.float64()),
        ("bool", ["true", "0", "FALSE"], [True, False, False], pa.bool_()),
        ("string", [1, 2, None], ["1", "2", None], pa.string()),
        ("timestamp", ["2015-05-17T10:05:03Z", "2015-05-17 10:05:03", "1431857103"], [datetime(2015, 5, 17, 10, 5, 3, tzinfo=UTC)] * 3, TIMESTAMP_TYPE),
    ],
    ids=["int", "float", "bool", "string", "timestamp"],
)
def test_cast_converts(kind: str, values: list[Any], expected: list[Any], arrow_type: pa.DataType) -> None:
    out = build_stage(f"{{type: cast, fields: {{v: {kind}, missing: int}}}}").process(batch_of(v=values)).main
    assert out.schema.field("v").type == arrow_type
    assert out.column("v").to_pylist() == expected


@pytest.mark.parametrize(
    "on_error, bytes_, dropped",
    [("route", [203023, 3638], 1), ("keep", [203023, 3638, None], 0), ("discard", [203023, 3638], 0)],
    ids=["route", "keep", "discard"],
)
def test_cast_failure_fails_only_that_record(on_error: str, bytes_: list[Any], dropped: int) -> None:
    out = build_stage(f"{{type: cast, fields: {{response: int, bytes: int}}, on_error: {on_error}}}", name="typed").process(ACCESS)
    assert out.main.column("bytes").to_pylist() == bytes_
    assert out.main.column("response").to_pylist()[:2] == [200, 404]
    assert out.discarded == (1 if on_error == "discard" else 0)
    if dropped:
        assert out.extra["dropped"].to_pylist() == [{
            "clientip": "66.249.73.135", "response": "301", "bytes": "-", "agent": "Googlebot/2.1",
            "_error": "bytes: cannot convert '-' to int", "_error_node": "typed",
        }]
    if on_error == "keep":
        assert out.main.column("_error").to_pylist() == [None, None, "bytes: cannot convert '-' to int"]


def test_cast_reasons_of_several_fields_are_joined() -> None:
    out = build_stage("{type: cast, fields: {a: int, b: bool}}").process(batch_of(a=["x", "1"], b=["maybe", "true"]))
    assert out.extra["dropped"].column("_error").to_pylist() == ["a: cannot convert 'x' to int; b: cannot convert 'maybe' to bool"]
    assert out.main.to_pylist() == [{"a": 1, "b": True}]


def test_cast_refuses_lossy_conversions() -> None:
    out = build_stage("{type: cast, fields: {n: int}}").process(pa.RecordBatch.from_pydict({"n": pa.array([2.0, 2.5])}))
    assert out.main.column("n").to_pylist() == [2]
    assert out.extra["dropped"].column("_error").to_pylist() == ["n: cannot convert 2.5 to int"]


@pytest.mark.parametrize(
    "snippet, path, reason",
    [
        ("{type: rename, fields: {a: c, b: c}}", ("fields",), "'a' and 'b' are both renamed to 'c'"),
        ("{type: rename, fields: {}}", ("fields",), "at least 1 item"),
        ("{type: cast, fields: {a: integer}}", ("fields", "a"), "Input should be 'int', 'float', 'string', 'bool' or 'timestamp'"),
        ("{type: drop_fields, fields: ['']}", ("fields",), "column names must not be empty"),
        ("{type: keep_fields}", ("fields",), "missing required key 'fields'"),
    ],
    ids=["rename-collision", "rename-empty", "cast-unknown-type", "drop-empty-name", "keep-no-fields"],
)
def test_bad_config_is_a_spec_error(snippet: str, path: tuple[Any, ...], reason: str) -> None:
    issue = only_spec_issue(snippet)
    assert issue.path == path
    assert reason in issue.message
