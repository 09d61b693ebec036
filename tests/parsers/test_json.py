"""The `json` stage on real application log lines (tests/parsers/cases/app_logs.jsonl)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from loglake.schemas.errors import SpecError
from tests.support import batch_of, build_stage

CASES = Path(__file__).parent / "cases"
APP_LOGS = (CASES / "app_logs.jsonl").read_text().splitlines()
"""16 lines from four kinds of services: Go (whole-second times), Python structlog, Node pino (numeric levels), Java logback."""
GO_LINES = [line for line in APP_LOGS if line.startswith('{"time":"')]


def _parse(lines: list[Any], snippet: str = "{type: json}", **extra: list[Any]) -> Any:
    return build_stage(snippet, name="parse").process(batch_of(message=lines, **extra))


def test_clean_batch_becomes_columns() -> None:
    out = _parse(GO_LINES[:2])
    assert out.extra == {}
    assert out.main.column("msg").to_pylist() == ["request handled", "retrying payment provider"]
    assert out.main.column("status").to_pylist() == [201, None]
    assert out.main.column("attempt").to_pylist() == [None, 2]
    assert out.main.column("latency_ms").to_pylist() == [48.213, None]
    assert out.main.column("message").to_pylist() == GO_LINES[:2]


def test_iso_times_stay_text_as_written() -> None:
    out = _parse(GO_LINES)
    assert out.main.schema.field("time").type == pa.string()
    assert out.main.column("time").to_pylist()[0] == "2024-05-17T10:05:03Z"


def test_later_batches_without_the_time_key_get_no_empty_time_column() -> None:
    stage = build_stage("{type: json}")
    stage.process(batch_of(message=GO_LINES[:1]))
    out = stage.process(batch_of(message=['{"msg": "no time here"}']))
    assert out.main.schema.names == ["message", "msg"]


def test_nested_objects_stay_structs() -> None:
    out = _parse([APP_LOGS[3], APP_LOGS[9]])
    req = out.main.schema.field("req").type
    assert pa.types.is_struct(req)
    assert out.main.column("req").to_pylist()[0]["headers"]["user-agent"].startswith("Mozilla/5.0 (X11; Linux x86_64)")
    assert out.main.column("err").to_pylist()[1]["type"] == "TypeError"
    assert out.main.column("pid").to_pylist() == [7, 7]


def test_whole_file_with_mixed_types_keeps_every_record() -> None:
    out = _parse(APP_LOGS)
    assert out.extra == {}
    assert out.main.num_rows == len(APP_LOGS)
    levels = out.main.column("level").to_pylist()
    assert levels[:5] == ["info", "warning", "error", "30", "INFO"]
    assert out.main.schema.field("level").type == pa.string()
    times = out.main.column("time").to_pylist()
    assert times[0] == "2024-05-17T10:05:03Z" and times[3] == "1715940304221"
    assert out.main.column("customer").to_pylist()[2] == {"id": 48213, "plan": "pro", "country": "DE"}
    assert out.main.column("amount").to_pylist()[13] == {"value": 0.0, "currency": "EUR"}


@pytest.mark.parametrize(
    "lines, column, expected, kind",
    [
        (['{"v": 1}', '{"v": "one"}'], "v", ["1", "one"], pa.string()),
        (['{"v": true}', '{"v": 1}'], "v", ["true", "1"], pa.string()),
        (['{"v": 1}', '{"v": 1.5}'], "v", [1.0, 1.5], pa.float64()),
        (['{"v": {"a": 1}}', '{"v": "flat"}'], "v", ['{"a":1}', "flat"], pa.string()),
        (['{"v": [1, 2]}', '{"v": 3}'], "v", ["[1,2]", "3"], pa.string()),
        (['{"v": {"a": 1}}', '{"v": {"a": "x"}}'], "v", [{"a": "1"}, {"a": "x"}], pa.struct([("a", pa.string())])),
    ],
    ids=["int-and-string", "bool-and-int", "int-and-float", "object-and-string", "array-and-number", "nested-mix"],
)
def test_mixed_types_become_text(lines: list[str], column: str, expected: list[Any], kind: pa.DataType) -> None:
    out = _parse(lines)
    assert out.extra == {}
    assert out.main.schema.field(column).type == kind
    assert out.main.column(column).to_pylist() == expected


@pytest.mark.parametrize(
    "bad, error",
    [
        ('{"msg": "cut off', "invalid JSON at char 17: unexpected end of data"),
        ("GET /index.html HTTP/1.1", "invalid JSON at char 1"),
        ("[1, 2, 3]", "JSON array is not an object: '[1, 2, 3]'"),
        ('"just a string"', "JSON string is not an object"),
        ("", "empty line"),
        ('{"a": 1} {"b": 2}', "invalid JSON at char 10: unexpected content after document"),
        ('{"a": 1,}', "invalid JSON at char 8: trailing comma is not allowed"),
        ('{"a": "\\ud800"}', "surrogate"),
    ],
    ids=["truncated", "not-json", "array", "string", "empty", "two-objects", "trailing-comma", "lone-surrogate"],
)
def test_one_bad_line_among_good_ones(bad: str, error: str) -> None:
    lines = [*GO_LINES[:3], bad, *GO_LINES[3:6]]
    out = _parse(lines, seq=list(range(len(lines))))
    assert out.main.column("seq").to_pylist() == [0, 1, 2, 4, 5, 6]
    assert out.main.column("request_id").to_pylist()[2] == "d2e4b6a8-1c3e-4f5a-8b7c-9d0e1f2a3b4c"
    assert out.main.schema.field("status").type == pa.int64()
    dropped = out.extra["dropped"]
    assert dropped.column("message").to_pylist() == [bad]
    assert dropped.column("_error_node").to_pylist() == ["parse"]
    assert error in dropped.column("_error").to_pylist()[0]


def test_pretty_printed_record_spanning_lines_is_parsed() -> None:
    pretty = json.dumps({"msg": "pretty", "status": 200}, indent=2)
    out = _parse([GO_LINES[0], pretty, GO_LINES[1]])
    assert out.extra == {}
    assert out.main.column("msg").to_pylist() == ["request handled", "pretty", "retrying payment provider"]
    assert out.main.column("status").to_pylist() == [201, 200, None]


@pytest.mark.parametrize(
    "kind", [pa.string(), pa.large_string(), pa.dictionary(pa.int32(), pa.string()), pa.binary()],
    ids=["string", "large-string", "dictionary", "binary"],
)
def test_text_column_types(kind: pa.DataType) -> None:
    lines = pa.array(GO_LINES[:2] + ["nope"], pa.string()).cast(kind)
    out = build_stage("{type: json}").process(pa.RecordBatch.from_arrays([lines], names=["message"]))
    assert out.main.column("status").to_pylist() == [201, None]
    assert out.extra["dropped"].num_rows == 1


def test_error_quotes_a_truncated_copy_of_a_long_line() -> None:
    bad = '{"msg": "' + "x" * 500
    out = _parse([GO_LINES[0], bad])
    [error] = out.extra["dropped"].column("_error").to_pylist()
    assert "'{\"msg\": \"xxx" in error and error.endswith("…'")
    assert len(error) < 250


@pytest.mark.parametrize("on_error, rows, discarded", [("keep", 3, 0), ("discard", 2, 1)], ids=["keep", "discard"])
def test_bad_line_follows_on_error(on_error: str, rows: int, discarded: int) -> None:
    out = _parse([GO_LINES[0], "oops", GO_LINES[1]], f"{{type: json, on_error: {on_error}}}")
    assert out.main.num_rows == rows
    assert out.discarded == discarded
    assert out.main.column("msg").to_pylist()[:2] == ["request handled", "retrying payment provider"]
    if on_error == "keep":
        assert out.main.column("message").to_pylist()[2] == "oops"
        assert out.main.column("_error").to_pylist()[:2] == [None, None]


def test_target_writes_one_struct_and_keeps_the_source() -> None:
    out = _parse([GO_LINES[0], None], "{type: json, target: event}")
    assert out.main.schema.names == ["message", "event"]
    event = out.main.column("event").to_pylist()
    assert event[0]["status"] == 201 and event[0]["time"] == "2024-05-17T10:05:03Z"
    assert event[1] is None
    assert out.main.column("message").to_pylist() == [GO_LINES[0], None]


def test_parsed_key_replaces_a_column_logstash_style() -> None:
    out = _parse([APP_LOGS[4], GO_LINES[0]], level=["unknown", "unknown"])
    assert out.main.column("level").to_pylist() == ["INFO", "info"]
    assert out.main.column("message").to_pylist() == [
        "Started OrderServiceApplication in 7.412 seconds (process running for 8.03)",
        GO_LINES[0],
    ]


def test_null_line_passes_through_and_missing_field_fails() -> None:
    out = _parse([None, GO_LINES[0]])
    assert out.main.column("msg").to_pylist() == [None, "request handled"]
    missing = build_stage("{type: json, field: body}").process(batch_of(message=[GO_LINES[0]]))
    assert missing.main.num_rows == 0
    assert missing.extra["dropped"].column("_error").to_pylist() == ["no field 'body' in the record"]


def test_empty_batch_is_returned_as_is() -> None:
    empty = batch_of(message=GO_LINES[:1]).slice(0, 0)
    out = build_stage("{type: json}").process(empty)
    assert out.main.num_rows == 0 and out.main.schema == empty.schema


def test_big_integers_are_kept_exactly_as_text() -> None:
    lines = ['{"id": 123456789012345678901234567890, "n": 1.5}', '{"id": 42, "n": 2}']
    out = _parse(lines)
    assert out.main.column("id").to_pylist() == ["123456789012345678901234567890", "42"]
    assert out.main.column("n").to_pylist() == [1.5, 2.0]


def test_uint64_range_integer_is_text_and_int64_max_is_an_integer() -> None:
    out = _parse(['{"a": 18446744073709551615, "b": 9223372036854775807}'])
    assert out.main.column("a").to_pylist() == ["18446744073709551615"]
    assert out.main.column("b").to_pylist() == [9223372036854775807]


def test_invalid_utf8_bytes_are_replaced_not_fatal() -> None:
    batch = pa.RecordBatch.from_pydict({"message": pa.array([b'{"user": "J\xf6rg"}', b'{"user": "ok"}'], pa.binary())})
    out = build_stage("{type: json}").process(batch)
    assert out.main.column("user").to_pylist() == ["J\ufffdrg", "ok"]


def test_non_text_field_fails_every_record() -> None:
    out = build_stage("{type: json, field: n}").process(batch_of(n=[1, 2]))
    assert out.extra["dropped"].column("_error").to_pylist() == ["field 'n' holds int64, not text"] * 2


def test_hundred_thousand_lines_with_two_bad_ones() -> None:
    rng = random.Random(7)
    records = [
        {"time": f"2024-05-17T10:{i // 60 % 60:02d}:{i % 60:02d}Z", "level": rng.choice(["info", "warn", "error"]),
         "status": rng.choice([200, 201, 404, 500]), "latency_ms": round(rng.random() * 100, 3),
         "user": {"id": i, "plan": rng.choice(["free", "pro"])}}
        for i in range(100_000)
    ]
    lines = [json.dumps(record, separators=(",", ":")) for record in records]
    lines[31_337], lines[99_999] = "truncated {", '{"time": '
    out = _parse(lines)
    assert out.extra["dropped"].column("message").to_pylist() == ["truncated {", '{"time": ']
    main = out.main
    assert main.num_rows == 99_998
    expected = [r for i, r in enumerate(records) if i not in (31_337, 99_999)]
    assert main.column("status").to_pylist() == [r["status"] for r in expected]
    assert main.column("user").to_pylist()[-1] == expected[-1]["user"]
    assert main.column("time").to_pylist()[50_000] == expected[50_000]["time"]
    assert main.column("latency_ms").to_pylist()[12_345] == expected[12_345]["latency_ms"]


def test_bad_target_type_key_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as caught:
        build_stage("{type: json, feild: message}")
    assert "did you mean 'field'" in caught.value.issues[0].message


@pytest.mark.parametrize("separator", ["_", "."], ids=["underscore", "dot"])
def test_flatten_turns_nested_objects_into_top_level_columns(separator: str) -> None:
    stage = build_stage(f"{{type: json, flatten: true, flatten_separator: '{separator}'}}")
    lines = ['{"http": {"status": 200, "req": {"path": "/a"}}, "tags": [1, 2]}', '{"http": null, "x": 1}']
    out = stage.process(batch_of(message=lines)).main
    s = separator
    assert out.column(f"http{s}status").to_pylist() == [200, None]
    assert out.column(f"http{s}req{s}path").to_pylist() == ["/a", None]
    assert out.column("tags").to_pylist() == [[1, 2], None]
    assert "http" not in out.schema.names
    assert stage.parse_lines(lines) == [{f"http{s}status": 200, f"http{s}req{s}path": "/a", "tags": [1, 2]}, {"http": None, "x": 1}]


def test_nan_and_infinity_fail_as_in_loglake_parse_but_the_words_in_strings_do_not() -> None:
    stage = build_stage("{type: json}")
    lines = ['{"x": NaN}', '{"msg": "NaN is not a number", "n": 1}', '{"y": -Infinity}', '{"z": 2.5}']
    out = stage.process(batch_of(message=lines))
    assert out.main.column("msg").to_pylist() == ["NaN is not a number", None]
    assert out.main.column("z").to_pylist() == [None, 2.5]
    dropped = out.extra["dropped"]
    assert dropped.column("message").to_pylist() == ['{"x": NaN}', '{"y": -Infinity}']
    assert all("RFC 8259" in error for error in dropped.column("_error").to_pylist())
    assert [isinstance(r, dict) for r in stage.parse_lines(lines)] == [False, True, False, True]
