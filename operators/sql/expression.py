"""Compiling SQL expressions once, when the pipeline is built: syntax, exactly one expression, known
functions, and the columns it reads."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from loglake.operators.sql.session import PREFIX, ROWS_COLUMN, SUFFIX, TABLE, connection, quote, reason
from loglake.schemas.errors import ConfigError

__all__ = ["SqlExpression", "compile_expression"]

_FUNCTION_SCHEMAS = frozenset({"", "main", "pg_catalog"})
_SCALAR_KINDS = frozenset({"scalar", "macro"})
_DISPLAY_NAMES = {"count_star": "count"}
"""Names the parser gives functions, as the user wrote them."""


@functools.cache
def _function_kinds() -> dict[str, frozenset[str]]:
    """Every DuckDB function name (lower case) and its kinds: scalar, macro, aggregate, window, table, …"""
    rows = connection().execute(
        "SELECT lower(function_name), list(DISTINCT function_type) FROM duckdb_functions() GROUP BY 1"
    ).fetchall()
    return {name: frozenset(kinds) for name, kinds in rows}


@dataclass(frozen=True)
class SqlExpression:
    """A checked SQL expression: its text, the SQL actually run, and what it reads.

    `columns` are the referenced column paths (`("ua", "is_bot")` for `ua.is_bot`); `field` is the config
    key it came from (`condition`, `fields.status`), used to label errors.
    """

    text: str
    sql: str
    field: str
    columns: tuple[tuple[str, ...], ...]
    functions: frozenset[str]
    tree: dict[str, Any] | None = dataclasses.field(default=None, compare=False, hash=False, repr=False)
    """DuckDB's syntax tree of `text` (`json_serialize_sql`), for evaluating simple conditions in Arrow."""

def _serialize(sql: str) -> dict[str, Any]:
    rows = connection().execute("SELECT json_serialize_sql(?)", [sql]).fetchall()
    parsed: dict[str, Any] = json.loads(rows[0][0])
    return parsed


def _syntax_problem(text: str, error: dict[str, Any]) -> str:
    """Why `text` does not parse as one expression, in the user's terms."""
    try:
        statements = connection().extract_statements(PREFIX + text)
    except duckdb.Error:
        statements = []
    if len(statements) > 1:
        return f"holds {len(statements)} SQL statements; write one expression"
    if len(statements) == 1:
        alone = _serialize(PREFIX + text)
        if not alone.get("error") and alone["statements"][0]["node"].get("from_table", {}).get("type") != "EMPTY":
            return "is a query (it has FROM); write only the expression"
    reason = str(error.get("error_message", "syntax error"))
    position = error.get("position")
    if position is None:
        return reason
    prefix = len(PREFIX.encode())
    offset = int(position) - prefix
    encoded = text.encode()
    if offset >= len(encoded):
        return "syntax error at the end of the expression (is it incomplete?)"
    char = len(encoded[: max(offset, 0)].decode(errors="ignore"))
    return f"{reason} at char {char + 1}"


def _single_expression(tree: dict[str, Any]) -> dict[str, Any] | None:
    """The one select item of `SELECT <text> AS v FROM batch`, or None when the text is more than an expression."""
    statements = tree.get("statements", [])
    if len(statements) != 1:
        return None
    node = statements[0].get("node", {})
    source = node.get("from_table") or {}
    clean = (
        node.get("type") == "SELECT_NODE"
        and len(node.get("select_list", [])) == 1
        and not node.get("modifiers")
        and not (node.get("cte_map") or {}).get("map")
        and source.get("type") == "BASE_TABLE"
        and source.get("table_name") == TABLE
        and not source.get("alias")
        and all(node.get(key) is None for key in ("where_clause", "having", "qualify", "sample"))
        and not node.get("group_expressions")
    )
    item: dict[str, Any] = node["select_list"][0] if clean else {}
    return item if clean and item.get("alias") == "v" else None


@dataclass
class _Walk:
    """What an expression tree references, and what it must not contain."""

    columns: set[tuple[str, ...]] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    forbidden: list[str] = field(default_factory=list)

    def visit(self, node: Any, bound: frozenset[str] = frozenset()) -> None:
        if isinstance(node, list):
            for item in node:
                self.visit(item, bound)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("class")
        if kind == "COLUMN_REF":
            self._column(tuple(node["column_names"]), bound)
            return
        if kind == "LAMBDA":
            params = _Walk()
            params.visit(node.get("lhs"))
            self.visit(node.get("expr"), bound | {path[0].lower() for path in params.columns})
            return
        if kind == "WINDOW":
            self.forbidden.append(
                "window functions (OVER …) depend on how records happen to be batched; use a window stage"
            )
        elif kind == "SUBQUERY":
            self.forbidden.append("subqueries are not allowed; an expression reads only the current record")
        elif kind == "STAR":
            self.forbidden.append("'*' and COLUMNS(…) are not allowed; name the columns")
        elif kind == "PARAMETER":
            self.forbidden.append("parameters ($1, ?) are not allowed")
        elif kind == "FUNCTION" and not node.get("is_operator"):
            self.functions.add(str(node["function_name"]).lower())
            qualifier = [part for part in (node.get("catalog"), node.get("schema")) if part]
            if qualifier and qualifier[-1].lower() not in _FUNCTION_SCHEMAS:
                self._column(tuple(qualifier), bound)  # method syntax: `level.lower()`
        for value in node.values():
            if isinstance(value, (dict, list)):
                self.visit(value, bound)

    def _column(self, path: tuple[str, ...], bound: frozenset[str]) -> None:
        if path[0].lower() in bound:
            return
        if len(path) > 1 and path[0] == TABLE:
            path = path[1:]
        self.columns.add(path)


def _function_problems(names: set[str]) -> list[str]:
    kinds = _function_kinds()
    problems = []
    for name in sorted(names):
        found = kinds.get(name, frozenset())
        shown = _DISPLAY_NAMES.get(name, name)
        if found & _SCALAR_KINDS:
            continue
        if "aggregate" in found:
            problems.append(
                f"aggregate function '{shown}' would fold the batch into one row; aggregate in a window stage"
            )
        elif "window" in found:
            problems.append(
                f"window function '{name}' depends on how records happen to be batched; use a window stage"
            )
        elif found:
            problems.append(f"'{name}' is a table function; an expression can only call scalar functions")
        else:
            scalar = sorted(n for n, k in kinds.items() if k & _SCALAR_KINDS)
            close = difflib.get_close_matches(name, scalar, n=1, cutoff=0.6)
            problems.append(f"unknown function '{name}'" + (f"; did you mean '{close[0]}'?" if close else ""))
    return problems


def _dry_run(sql: str, columns: tuple[tuple[str, ...], ...]) -> None:
    """Run the expression over zero rows of NULL columns: catches constant mistakes (bad regex, bad format).

    Binder errors are ignored here: they depend on column types that only real batches have. Unknown types
    (a catalog error) are reported.
    """
    names = sorted({path[0].lower(): path[0] for path in columns}.values()) or [ROWS_COLUMN]
    loglake_batch = pa.RecordBatch.from_arrays([pa.nulls(0) for _ in names], names=names)  # noqa: F841 (scanned)
    try:
        connection().sql(f"{PREFIX}{sql}{SUFFIX}").fetchall()
    except duckdb.BinderException:
        return


def compile_expression(text: str, field: str, cast: str | None = None) -> SqlExpression:
    """Check one SQL expression and collect the columns and functions it uses.

    Args:
        text: the expression as written in the pipeline (`level = 'error'`).
        field: the config key it came from (`condition`, `fields.status`): error location and label.
        cast: a DuckDB type to cast the result to (`BOOLEAN` for conditions).

    Raises:
        ConfigError: the text is not exactly one valid expression, calls an unknown function, or uses
            something a per-record expression cannot (aggregates, windows, subqueries, `*`).
    """
    if not text.strip():
        raise ConfigError("empty SQL expression", field=field)
    tree = _serialize(f"{PREFIX}{text}{SUFFIX}")
    if tree.get("error"):
        raise ConfigError(f"invalid SQL expression {quote(text)}: {_syntax_problem(text, tree)}", field=field)
    item = _single_expression(tree)
    if item is None:
        raise ConfigError(f"invalid SQL expression {quote(text)}: not exactly one expression", field=field)
    walk = _Walk()
    walk.visit(item)
    problems = walk.forbidden + _function_problems(walk.functions)
    if problems:
        raise ConfigError(f"invalid SQL expression {quote(text)}: {'; '.join(problems)}", field=field)
    sql = text if cast is None else f"CAST((\n{text}\n) AS {cast})"
    columns = tuple(sorted(walk.columns))
    try:
        _dry_run(sql, columns)
    except duckdb.Error as exc:
        raise ConfigError(f"invalid SQL expression {quote(text)}: {reason(exc)}", field=field) from None
    return SqlExpression(text=text, sql=sql, field=field, columns=columns, functions=frozenset(walk.functions), tree=item)
