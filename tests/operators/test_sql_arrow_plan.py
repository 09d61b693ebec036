"""Simple conditions computed by Arrow give exactly what DuckDB gives: every expression of a generated corpus runs
through both engines over random batches with NULLs (in columns, in structs and in struct fields), text that
sorts in surprising ways, and integers of several widths; the shapes Arrow must not take are left to DuckDB."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pyarrow as pa
import pytest

from loglake.operators.sql.evaluate import SqlEvaluator
from loglake.operators.sql.expression import compile_expression

TEXTS = ["", "a", "A", "ab", "a'b", "é", "e", "z", "/healthz", "/health", "GET", "get", "10", "9"]
INTEGERS = [-(2**63), -3, -1, 0, 1, 2, 200, 404, 500, 503, 2**31, 2**63 - 1]


def _batch(rng: random.Random, rows: int = 400) -> pa.RecordBatch:
    def maybe(value: Any, share: float = 0.15) -> Any:
        return None if rng.random() < share else value

    small = [maybe(rng.choice([-3, 0, 1, 2, 127])) for _ in range(rows)]
    is_bot = [maybe(rng.random() < 0.3) for _ in range(rows)]
    family = [maybe(rng.choice(TEXTS)) for _ in range(rows)]
    parent_null = pa.array([rng.random() < 0.1 for _ in range(rows)])
    return pa.RecordBatch.from_pydict({
        "response": pa.array([maybe(rng.choice(INTEGERS)) for _ in range(rows)], pa.int64()),
        "Small": pa.array(small, pa.int8()),
        "path": pa.array([maybe(rng.choice(TEXTS)) for _ in range(rows)], pa.string()),
        "big_text": pa.array([maybe(rng.choice(TEXTS)) for _ in range(rows)], pa.large_string()),
        "flag": pa.array([maybe(rng.random() < 0.5) for _ in range(rows)], pa.bool_()),
        "ua": pa.StructArray.from_arrays([pa.array(is_bot, pa.bool_()), pa.array(family, pa.string())], names=["is_bot", "Family"], mask=parent_null),
        "ratio": pa.array([maybe(rng.choice([0.5, float("nan"), 2.0, -1.0])) for _ in range(rows)], pa.float64()),
    })


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _simple_conditions() -> list[str]:
    """Comparisons of each kind of column with literals of its kind, both ways round, and what wraps them."""
    operators = ["=", "<>", "!=", "<", "<=", ">", ">=", "IS DISTINCT FROM", "IS NOT DISTINCT FROM"]
    columns = {"response": INTEGERS, "small": [-3, 0, 1, 300], "path": TEXTS, "BIG_TEXT": TEXTS[:6], "flag": [True, False],
               "ua.is_bot": [True], "ua.family": TEXTS[:5], "loglake_batch.response": [500]}
    found = []
    for (column, literals), operator in itertools.product(columns.items(), operators):
        for literal in literals[:4]:
            found.append(f"{column} {operator} {_literal(literal)}")
        if operator in ("<", ">=", "="):
            found.append(f"{_literal(literals[-1])} {operator} {column}")
    found += ["flag", "ua.is_bot", "NOT flag", "flag IS NULL", "ua IS NULL", "ua.is_bot IS NOT NULL", "path IS NOT NULL",
              "response IN (200, 404, 500)", "path IN ('', 'a', 'é')", "path NOT IN ('a', 'b')", "small IN (0, 1)",
              "missing IS NULL", "ua.missing IS NOT NULL"]  # not in the batch: NULL, in both engines
    return found


def _combined(rng: random.Random, parts: list[str], count: int) -> list[str]:
    def build(depth: int) -> str:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice(parts)
        joiner = rng.choice([" AND ", " OR "])
        inner = joiner.join(f"({build(depth - 1)})" for _ in range(rng.randint(2, 3)))
        return f"NOT ({inner})" if rng.random() < 0.25 else inner

    return [build(3) for _ in range(count)]


def _both(text: str, cast: str | None) -> tuple[SqlEvaluator, SqlEvaluator]:
    expression = compile_expression(text, "condition", cast)
    return SqlEvaluator({"e": expression}), SqlEvaluator({"e": expression}, arrow=False)


def _assert_same(text: str, cast: str | None, batch: pa.RecordBatch, by_arrow: bool) -> None:
    arrow_side, duckdb_side = _both(text, cast)
    inputs, _ = arrow_side._inputs(batch)
    assert (arrow_side._arrow is not None and arrow_side._arrow.evaluate(inputs) is not None) == by_arrow, text
    ours, theirs = arrow_side.evaluate(batch), duckdb_side.evaluate(batch)
    assert ours.failed == theirs.failed and ours.errors == theirs.errors, text
    assert ours.columns["e"].type == theirs.columns["e"].type, text
    assert ours.columns["e"].to_pylist() == theirs.columns["e"].to_pylist(), text


@pytest.mark.parametrize("cast", ["BOOLEAN", None], ids=["condition", "eval"])
def test_every_simple_condition_gives_what_duckdb_gives(cast: str | None) -> None:
    rng = random.Random(11)
    simple = _simple_conditions()
    corpus = simple + _combined(rng, simple, 150)
    batches = [_batch(rng) for _ in range(3)]
    for text in corpus:
        _assert_same(text, cast, rng.choice(batches), by_arrow=True)


@pytest.mark.parametrize(
    "text",
    [
        "ratio > 1",                      # NaN: DuckDB orders it above every number, Arrow's comparisons say false
        "ratio IS NULL",                  # NaN is not NULL in DuckDB
        "path = 10",                      # text against a number: DuckDB casts (and may fail)
        "response = '500'",
        "response > 1.5",                 # a decimal literal
        "response = NULL",
        "missing = 1",                    # not in the batch: NULL
        "flag AND response",              # AND over a number
        "response",                       # a number as a condition
        "lower(path) = 'a'",              # a function
        "response + 1 > 500",
        "path LIKE 'a%'",
        "response BETWEEN 200 AND 404",
        "path IN ('a', NULL)",
    ],
)
def test_what_arrow_does_not_compute_is_left_to_duckdb(text: str) -> None:
    rng = random.Random(3)
    batch = _batch(rng)
    _assert_same(text, "BOOLEAN", batch, by_arrow=False)


def test_a_route_of_simple_conditions_reads_its_batch_without_duckdb() -> None:
    """The nginx pipeline's route: the conditions a real `route` stage holds go to Arrow, and agree with DuckDB."""
    rng = random.Random(5)
    batch = _batch(rng, rows=2000)
    expressions = {"errors": compile_expression("response >= 500", "routes.errors", "BOOLEAN"),
                   "bots": compile_expression("ua.is_bot", "routes.bots", "BOOLEAN")}
    arrow_side, duckdb_side = SqlEvaluator(expressions), SqlEvaluator(expressions, arrow=False)
    inputs, _ = arrow_side._inputs(batch)
    assert arrow_side._arrow is not None and arrow_side._arrow.evaluate(inputs) is not None
    ours, theirs = arrow_side.evaluate(batch), duckdb_side.evaluate(batch)
    assert {name: column.to_pylist() for name, column in ours.columns.items()} == {
        name: column.to_pylist() for name, column in theirs.columns.items()}
    assert ours.truth("errors").true_count > 0 and ours.truth("bots").true_count > 0
