"""The `sample` stage: deterministic by key across instances, rate accuracy on real lines, missing keys."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import APACHE_LOG, batch_of, build_stage, only_spec_issue

LINES = APACHE_LOG.read_text().splitlines()
CLIENTS = [line.split(" ", 1)[0] for line in LINES]


@pytest.mark.parametrize("rate", [2, 10, 100], ids=["1-in-2", "1-in-10", "1-in-100"])
def test_rate_on_10k_real_lines_is_close(rate: int) -> None:
    out = build_stage(f"{{type: sample, rate: {rate}}}").process(batch_of(message=LINES))
    expected = len(LINES) / rate
    assert abs(out.main.num_rows - expected) <= 4 * expected**0.5 + 2


def test_same_records_in_two_instances_and_in_any_batching() -> None:
    batch = batch_of(message=LINES, clientip=CLIENTS)
    first = build_stage("{type: sample, rate: 5, key: clientip}").process(batch).main
    second = build_stage("{type: sample, rate: 5, key: clientip}")
    halves = [second.process(batch.slice(0, 4000)).main, second.process(batch.slice(4000)).main]
    assert first.column("message").to_pylist() == [m for half in halves for m in half.column("message").to_pylist()]
    assert 0 < first.num_rows < len(LINES)


def test_records_with_the_same_key_go_together() -> None:
    out = build_stage("{type: sample, rate: 3, key: clientip}").process(batch_of(message=LINES, clientip=CLIENTS)).main
    kept = set(out.column("clientip").to_pylist())
    assert out.num_rows == sum(client in kept for client in CLIENTS)


def test_exact_choice_is_pinned() -> None:
    out = build_stage("{type: sample, rate: 2, key: user}").process(batch_of(user=[f"u{i}" for i in range(8)]))
    assert out.main.column("user").to_pylist() == ["u2", "u5", "u6", "u7"]  # pinned: a changed hash would change replays


def test_numeric_and_null_keys() -> None:
    stage = build_stage("{type: sample, rate: 2, key: n}")
    numbers = stage.process(batch_of(n=list(range(10)))).main.column("n").to_pylist()
    text = stage.process(batch_of(n=[str(i) for i in range(10)])).main.column("n").to_pylist()
    assert [str(n) for n in numbers] == text
    nulls = stage.process(batch_of(n=[None, None, None])).main.num_rows
    assert nulls in (0, 3)


def test_rate_one_keeps_all_and_counter_without_message() -> None:
    assert build_stage("{type: sample, rate: 1}").process(batch_of(message=LINES[:10])).main.num_rows == 10
    stage = build_stage("{type: sample, rate: 4}")
    kept = [stage.process(batch_of(x=list(range(start, start + 5)))).main.column("x").to_pylist() for start in (0, 5)]
    assert kept == [[0, 4], [8]]


@pytest.mark.parametrize(
    "on_error, main_rows, dropped_rows", [("route", 0, 2), ("keep", 2, 0), ("discard", 0, 0)], ids=["route", "keep", "discard"]
)
def test_missing_key_column_fails_records(on_error: str, main_rows: int, dropped_rows: int) -> None:
    out = build_stage(f"{{type: sample, rate: 2, key: user, on_error: {on_error}}}", name="some").process(batch_of(message=["a", "b"]))
    assert out.main.num_rows == main_rows
    if dropped_rows:
        assert out.extra["dropped"].column("_error").to_pylist() == ["sample: no field 'user' in the record"] * 2


@pytest.mark.parametrize(
    "snippet, path, reason",
    [("{type: sample, rate: 0}", ("rate",), "greater than or equal to 1"), ("{type: sample}", ("rate",), "missing required key 'rate'")],
    ids=["zero-rate", "no-rate"],
)
def test_bad_config_is_a_spec_error(snippet: str, path: tuple[Any, ...], reason: str) -> None:
    issue = only_spec_issue(snippet)
    assert issue.path == path
    assert reason in issue.message
