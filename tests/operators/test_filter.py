"""The `filter` stage, built from YAML through the real spec loader, on real DuckDB."""

from __future__ import annotations

from typing import Any

import pytest

from loglake.schemas.errors import SpecError
from tests.support import batch_of, build_stage

ACCESS = batch_of(
    clientip=["83.149.9.216", "66.249.73.135", "50.16.19.13", "93.114.45.13", "208.91.156.11"],
    request=["/presentations/logstash-monitorama-2013/", "/robots.txt", "/blog/tags/puppet?flav=rss20", "/favicon.ico", "/style2.css"],
    response=[200, 200, 200, 404, None],
    bytes=[203023, 102, 14872, 3638, 4877],
    level=["info", "info", "warn", "error", None],
    ua=[
        {"family": "Chrome", "is_bot": False},
        {"family": "Googlebot", "is_bot": True},
        {"family": "Other", "is_bot": None},
        {"family": "Firefox", "is_bot": False},
        None,
    ],
)
"""Five records shaped like parsed Apache access-log lines (../shared/data/apache_access_10k.log)."""


@pytest.mark.parametrize(
    "condition, kept",
    [
        ("level = 'error'", ["93.114.45.13"]),
        ("level <> 'error'", ["83.149.9.216", "66.249.73.135", "50.16.19.13"]),
        ("response >= 400 OR response IS NULL", ["93.114.45.13", "208.91.156.11"]),
        ("ua.is_bot", ["66.249.73.135"]),
        ("NOT ua.is_bot", ["83.149.9.216", "93.114.45.13"]),
        ("request LIKE '%.css' OR ends_with(request, '.ico')", ["93.114.45.13", "208.91.156.11"]),
        ("bytes > 10000 AND starts_with(clientip, '83.')", ["83.149.9.216"]),
        ("no_such_column = 'x'", []),
        ("no_such_column IS NULL", ["83.149.9.216", "66.249.73.135", "50.16.19.13", "93.114.45.13", "208.91.156.11"]),
        ("ua.no_such_field IS NULL AND response = 200", ["83.149.9.216", "66.249.73.135", "50.16.19.13"]),
    ],
    ids=["equals", "null-is-false", "or-is-null", "struct-field", "not-struct-null-is-false", "like-and-function",
         "and", "missing-column-is-null", "missing-column-is-null-test", "missing-struct-field"],
)
def test_filter_keeps_matching_records(condition: str, kept: list[str]) -> None:
    stage = build_stage(f'{{type: filter, condition: "{condition}"}}')
    out = stage.process(ACCESS)
    assert out.main.column("clientip").to_pylist() == kept
    assert out.main.schema == ACCESS.schema
    assert out.extra == {}


def test_filter_keeps_other_columns_untouched_and_in_order() -> None:
    stage = build_stage("{type: filter, condition: \"response = 200\"}")
    out = stage.process(ACCESS)
    assert out.main.to_pylist() == ACCESS.slice(0, 3).to_pylist()


def test_filter_on_an_empty_batch_returns_it() -> None:
    empty = ACCESS.slice(0, 0)
    out = build_stage("{type: filter, condition: \"level = 'error'\"}").process(empty)
    assert out.main.num_rows == 0
    assert out.main.schema == ACCESS.schema


@pytest.mark.parametrize(
    "condition, reason",
    [
        ("level = = 'error'", "syntax error at or near"),
        ("lowr(level) = 'error'", "unknown function 'lowr'; did you mean 'lower'?"),
        ("level = 'error'; DROP TABLE logs", "holds 2 SQL statements"),
        ("level FROM logs", "is a query"),
    ],
    ids=["bad-syntax", "unknown-function", "two-statements", "trailing-from"],
)
def test_bad_condition_is_a_located_spec_error(condition: str, reason: str) -> None:
    with pytest.raises(SpecError) as caught:
        build_stage(f'{{type: filter, condition: "{condition}"}}', name="errors")
    [issue] = caught.value.issues
    assert issue.path == ("condition",)
    assert issue.node == "errors"
    assert issue.node_type == "filter"
    assert f'"{condition}"' in issue.message
    assert reason in issue.message


def test_missing_condition_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as caught:
        build_stage("{type: filter}")
    assert caught.value.issues[0].path == ("condition",)


CODES = batch_of(line=["a", "b", "c", "d"], code=["200", "oops", "404", "500"])


@pytest.mark.parametrize(
    "on_error, main_lines, dropped_lines, discarded",
    [
        ("route", ["d"], ["b"], 0),
        ("keep", ["d", "b"], None, 0),
        ("discard", ["d"], None, 1),
    ],
    ids=["route", "keep", "discard"],
)
def test_rows_whose_condition_fails_follow_on_error(
    on_error: str, main_lines: list[str], dropped_lines: list[str] | None, discarded: int
) -> None:
    stage = build_stage(f"{{type: filter, condition: \"CAST(code AS INTEGER) >= 500\", on_error: {on_error}}}", name="http5xx")
    out = stage.process(CODES)
    assert out.main.column("line").to_pylist() == main_lines
    assert out.discarded == discarded
    if dropped_lines is None:
        assert "dropped" not in out.extra
    else:
        dropped = out.extra["dropped"]
        assert dropped.column("line").to_pylist() == dropped_lines
        assert dropped.column("_error_node").to_pylist() == ["http5xx"]
        [error] = dropped.column("_error").to_pylist()
        assert error.startswith("condition: Conversion Error: Could not convert string 'oops' to INT32")
    if on_error == "keep":
        errors: list[Any] = out.main.column("_error").to_pylist()
        assert errors[0] is None and "oops" in errors[1]


def test_condition_that_is_not_boolean_is_cast() -> None:
    out = build_stage("{type: filter, condition: \"bytes % 2\"}").process(ACCESS)
    assert out.main.column("bytes").to_pylist() == [203023, 4877]

