"""The shared SQL-expression helper: compile-time checks and batch evaluation on real DuckDB."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

from loglake.operators import sql
from loglake.operators.sql import evaluate
from loglake.operators.sql import SqlEvaluator, compile_expression
from loglake.schemas.errors import ConfigError
from tests.support import APACHE_LOG, batch_of, build_stage


@pytest.mark.parametrize(
    "text, columns, functions",
    [
        ("level = 'error'", [("level",)], set()),
        ("ua.is_bot AND status >= 500", [("status",), ("ua", "is_bot")], set()),
        ("lower(service) LIKE 'check%'", [("service",)], {"lower"}),
        ("level.upper() = 'WARN'", [("level",)], {"upper"}),
        ("list_contains(list_transform(tags, lambda t: upper(t)), 'REDIS')", [("tags",)], {"list_contains", "list_transform", "upper"}),
        ("\"@timestamp\" IS NOT NULL -- the Logstash field", [("@timestamp",)], set()),
        ("'prod'", [], set()),
    ],
    ids=["comparison", "struct-field", "function", "method-call", "lambda-param-not-a-column", "quoted-name-comment", "constant"],
)
def test_compile_collects_columns_and_functions(text: str, columns: list[tuple[str, ...]], functions: set[str]) -> None:
    expression = compile_expression(text, "condition")
    assert list(expression.columns) == columns
    assert expression.functions == functions


@pytest.mark.parametrize(
    "text, reason",
    [
        ("level = = 'error'", 'syntax error at or near "=" at char 9'),
        ("status >=", "syntax error at the end of the expression"),
        ("1; DROP TABLE logs", "holds 2 SQL statements"),
        ("level FROM logs", "is a query (it has FROM)"),
        ("level AS v, status", "not exactly one expression"),
        ("lowr(level) = 'x'", "unknown function 'lowr'; did you mean 'lower'?"),
        ("count(*) > 10", "aggregate function 'count' would fold the batch"),
        ("row_number() OVER () = 1", "window functions (OVER …)"),
        ("status IN (SELECT 500)", "subqueries are not allowed"),
        ("read_csv('/etc/passwd') IS NULL", "'read_csv' is a table function"),
        ("regexp_matches(message, '(unclosed')", "missing ): (unclosed"),
        ("CAST(status AS INTEGR)", "INTEGR does not exist"),
        ("   ", "empty SQL expression"),
    ],
    ids=["syntax", "incomplete", "two-statements", "trailing-from", "two-items", "unknown-function",
         "aggregate", "window", "subquery", "table-function", "bad-constant-regex", "unknown-type", "empty"],
)
def test_compile_rejects_with_reason(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_expression(text, "fields.x")
    assert caught.value.field == "fields.x"
    assert reason in caught.value.message
    if text.strip():
        assert f'"{text}"' in caught.value.message


def _evaluate(batch: pa.RecordBatch, **texts: str) -> sql.Evaluation:
    expressions = {name: compile_expression(text, f"fields.{name}") for name, text in texts.items()}
    return SqlEvaluator(expressions, node="test").evaluate(batch)


def test_evaluate_returns_one_array_per_expression() -> None:
    batch = batch_of(status=[200, 503, None], path=["/a", "/b", "/c"])
    result = _evaluate(batch, bucket="status // 100", loud="upper(path)")
    assert result.failed == []
    assert result.columns["bucket"].to_pylist() == [2, 5, None]
    assert result.columns["loud"].to_pylist() == ["/A", "/B", "/C"]


def test_missing_column_and_missing_struct_field_read_as_null() -> None:
    batch = batch_of(ua=[{"family": "Chrome"}, None], level=["info", "error"])
    result = _evaluate(batch, bot="ua.is_bot", family="ua.family", absent="coalesce(nope, 'none')")
    assert result.failed == []
    assert result.columns["bot"].to_pylist() == [None, None]
    assert result.columns["family"].to_pylist() == ["Chrome", None]
    assert result.columns["absent"].to_pylist() == ["none", "none"]


@pytest.fixture(scope="module")
def agents() -> pa.RecordBatch:
    """The real log's user agents through the `user_agent` stage: a wide struct `ua`, null where the agent is `-`."""
    lines = APACHE_LOG.read_text(encoding="utf-8").splitlines()
    agents = [line.rsplit('"', 2)[-2] if line.count('"') >= 6 else None for line in lines]
    return build_stage("{type: user_agent, field: agent, target: ua}").process(batch_of(agent=agents)).main


def test_struct_fields_read_from_a_wide_struct_are_its_values(agents: pa.RecordBatch) -> None:
    result = _evaluate(agents, bot="ua.is_bot", family="upper(ua.browser_family)", whole="ua IS NULL", absent="ua.nope")
    rows = agents.column("ua").to_pylist()
    assert None in rows and any(row and row["is_bot"] for row in rows)
    assert result.failed == []
    assert result.columns["bot"].to_pylist() == [None if row is None else row["is_bot"] for row in rows]
    assert result.columns["family"].to_pylist() == [None if row is None else row["browser_family"].upper() for row in rows]
    assert result.columns["whole"].to_pylist() == [row is None for row in rows]
    assert result.columns["absent"].to_pylist() == [None] * len(rows)


def test_duckdb_gets_only_the_struct_fields_read(agents: pa.RecordBatch) -> None:
    ua = agents.column("ua")
    narrowed = evaluate._narrowed(ua, [("is_bot",), ("OS_family",), ("device", "brand")])
    assert [field.name for field in narrowed.type] == ["is_bot", "os_family", "device"]
    assert narrowed.null_count == ua.null_count
    assert narrowed.field("os_family").to_pylist() == ua.field("os_family").to_pylist()
    assert evaluate._narrowed(ua, [(), ("is_bot",)]).type == ua.type, "a struct read as a whole keeps every field"


def test_column_names_match_case_insensitively() -> None:
    result = _evaluate(batch_of(Level=["WARN"]), low="lower(level)")
    assert result.columns["low"].to_pylist() == ["warn"]


def test_timestamps_are_handled_in_utc() -> None:
    batch = pa.RecordBatch.from_pydict({"ts": pa.array([1_715_940_303_000_000], pa.timestamp("us", tz="UTC"))})
    result = _evaluate(batch, hour="hour(ts)", text="strftime(ts, '%H:%M')")
    assert result.columns["hour"].to_pylist() == [10]
    assert result.columns["text"].to_pylist() == ["10:05"]


def test_failing_rows_are_isolated_with_their_own_message() -> None:
    codes = [str(i) for i in range(1000)]
    codes[137], codes[802] = "n/a", "-"
    result = _evaluate(batch_of(code=codes), n="CAST(code AS INTEGER)")
    assert result.failed == [137, 802]
    assert "Could not convert string 'n/a' to INT32" in result.errors[0]
    assert "Could not convert string '-' to INT32" in result.errors[1]
    assert all(error.startswith("fields.n: Conversion Error") for error in result.errors)
    values = result.columns["n"].to_pylist()
    assert values[136] == 136 and values[137] is None and values[999] == 999


def test_bisection_costs_log_n_queries_per_bad_row(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_run = evaluate._run

    def counting_run(statement: str, loglake_batch: pa.RecordBatch) -> list[pa.Array]:
        calls.append(loglake_batch.num_rows)
        return real_run(statement, loglake_batch)

    monkeypatch.setattr(evaluate, "_run", counting_run)
    codes = [str(i) for i in range(4096)]
    codes[3000] = "x"
    result = _evaluate(batch_of(code=codes), n="CAST(code AS INTEGER)")
    assert result.failed == [3000]
    assert len(calls) <= 2 + 2 * 12  # the batch, the zero-row probe, two halves per level
    assert max(calls[2:]) == 2048


def test_error_names_the_failing_expression_among_several() -> None:
    result = _evaluate(batch_of(code=["1", "x"], path=["/a", "/b"]), up="upper(path)", n="CAST(code AS INTEGER)")
    assert result.failed == [1]
    assert result.errors[0].startswith("fields.n: Conversion Error")
    assert result.columns["up"].to_pylist() == ["/A", None]


def test_schema_error_fails_every_row_at_once_and_names_the_missing_column() -> None:
    result = _evaluate(batch_of(level=["info", "warn"]), hour="date_trunc('hour', ts)")
    assert result.failed == [0, 1]
    assert "Binder Error" in result.errors[0]
    assert "read as NULL: 'ts'" in result.errors[0]


def test_query_budget_stops_isolating_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluate, "MAX_QUERIES_PER_BATCH", 4)
    result = _evaluate(batch_of(code=["x"] * 64), n="CAST(code AS INTEGER)")
    assert result.failed == list(range(64))
    assert any("not isolated" in error for error in result.errors)


def test_evaluators_run_concurrently_from_threads() -> None:
    evaluator = SqlEvaluator({"n": compile_expression("CAST(code AS INTEGER) * 2", "fields.n")})
    batches = [batch_of(code=[str(i + k) for i in range(2000)]) for k in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(evaluator.evaluate, batches))
    for k, result in enumerate(results):
        assert result.columns["n"][0].as_py() == 2 * k
        assert result.columns["n"][1999].as_py() == 2 * (1999 + k)
