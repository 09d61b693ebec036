"""SQL expressions in DuckDB's dialect, compiled once and evaluated over whole Arrow batches.

`compile_expression` checks an expression when the pipeline is built: syntax, exactly one expression,
known functions, and the columns it reads. `SqlEvaluator` evaluates named expressions over a batch with
one query on a per-thread DuckDB connection. Records that make a query fail are isolated by bisection, so
the good records are still computed and each failed one carries DuckDB's message.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from loglake.schemas.errors import ConfigError

__all__ = ["SqlExpression", "Evaluation", "SqlEvaluator", "compile_expression", "MAX_QUERIES_PER_BATCH"]

log = logging.getLogger(__name__)

MAX_QUERIES_PER_BATCH = 512
"""Query budget for isolating failed records in one batch; records still unresolved share their group's error."""

_TABLE = "loglake_batch"
"""Name the batch is scanned under (a Python local found by DuckDB's replacement scan)."""
_PREFIX = "SELECT\n"
_SUFFIX = f"\nAS v FROM {_TABLE}"
_ROWS_COLUMN = "loglake_rows"
"""Placeholder column giving DuckDB the row count when an expression reads no column."""
_FUNCTION_SCHEMAS = frozenset({"", "main", "pg_catalog"})
_SCALAR_KINDS = frozenset({"scalar", "macro"})
_BATCH_WIDE_ERRORS: tuple[type[duckdb.Error], ...] = (
    duckdb.BinderException,
    duckdb.CatalogException,
    duckdb.ParserException,
    duckdb.NotImplementedException,
)
"""Errors that depend on the batch's schema, not on its rows: bisection would not isolate anything."""
_QUOTE_LIMIT = 80
_DISPLAY_NAMES = {"count_star": "count"}
"""Names the parser gives functions, as the user wrote them."""

_connections: dict[int, duckdb.DuckDBPyConnection] = {}
_connections_lock = threading.Lock()


def _connection() -> duckdb.DuckDBPyConnection:
    """This OS thread's DuckDB connection (single-threaded, UTC session time zone).

    Keyed by thread id, not `threading.local`: engine worker threads are started outside Python, and each
    callback into Python gets a fresh thread state there, which would empty a thread-local every batch.
    """
    ident = threading.get_ident()
    con = _connections.get(ident)
    if con is None:
        con = duckdb.connect(config={"threads": 1})
        con.execute("SET TimeZone = 'UTC'")
        with _connections_lock:
            _connections[ident] = con
    return con


@functools.cache
def _function_kinds() -> dict[str, frozenset[str]]:
    """Every DuckDB function name (lower case) and its kinds: scalar, macro, aggregate, window, table, …"""
    rows = _connection().execute(
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


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return '"' + (flat if len(flat) <= _QUOTE_LIMIT else flat[: _QUOTE_LIMIT - 1] + "…") + '"'


def _reason(exc: BaseException) -> str:
    """DuckDB's message without the echoed query (`LINE 1: …`) and candidate lists."""
    return str(exc).strip().split("\n", 1)[0].strip()


def _serialize(sql: str) -> dict[str, Any]:
    rows = _connection().execute("SELECT json_serialize_sql(?)", [sql]).fetchall()
    parsed: dict[str, Any] = json.loads(rows[0][0])
    return parsed


def _syntax_problem(text: str, error: dict[str, Any]) -> str:
    """Why `text` does not parse as one expression, in the user's terms."""
    try:
        statements = _connection().extract_statements(_PREFIX + text)
    except duckdb.Error:
        statements = []
    if len(statements) > 1:
        return f"holds {len(statements)} SQL statements; write one expression"
    if len(statements) == 1:
        alone = _serialize(_PREFIX + text)
        if not alone.get("error") and alone["statements"][0]["node"].get("from_table", {}).get("type") != "EMPTY":
            return "is a query (it has FROM); write only the expression"
    reason = str(error.get("error_message", "syntax error"))
    position = error.get("position")
    if position is None:
        return reason
    prefix = len(_PREFIX.encode())
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
        and source.get("table_name") == _TABLE
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
        if len(path) > 1 and path[0] == _TABLE:
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
    names = sorted({path[0].lower(): path[0] for path in columns}.values()) or [_ROWS_COLUMN]
    loglake_batch = pa.RecordBatch.from_arrays([pa.nulls(0) for _ in names], names=names)  # noqa: F841 (scanned)
    try:
        _connection().sql(f"{_PREFIX}{sql}{_SUFFIX}").fetchall()
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
    tree = _serialize(f"{_PREFIX}{text}{_SUFFIX}")
    if tree.get("error"):
        raise ConfigError(f"invalid SQL expression {_quote(text)}: {_syntax_problem(text, tree)}", field=field)
    item = _single_expression(tree)
    if item is None:
        raise ConfigError(f"invalid SQL expression {_quote(text)}: not exactly one expression", field=field)
    walk = _Walk()
    walk.visit(item)
    problems = walk.forbidden + _function_problems(walk.functions)
    if problems:
        raise ConfigError(f"invalid SQL expression {_quote(text)}: {'; '.join(problems)}", field=field)
    sql = text if cast is None else f"CAST((\n{text}\n) AS {cast})"
    columns = tuple(sorted(walk.columns))
    try:
        _dry_run(sql, columns)
    except duckdb.Error as exc:
        raise ConfigError(f"invalid SQL expression {_quote(text)}: {_reason(exc)}", field=field) from None
    return SqlExpression(text=text, sql=sql, field=field, columns=columns, functions=frozenset(walk.functions))


@dataclass(frozen=True)
class Evaluation:
    """Results of evaluating named expressions over one batch.

    `columns` holds one array per expression, as long as the batch, null where a record failed;
    `failed` lists failed row indices in ascending order and `errors` one message for each.
    """

    columns: dict[str, pa.Array]
    failed: list[int]
    errors: list[str]

    def ok_mask(self, num_rows: int) -> pa.BooleanArray:
        """True for the rows that did not fail."""
        mask = [True] * num_rows
        for row in self.failed:
            mask[row] = False
        return pa.array(mask, pa.bool_())


def _with_path(array: pa.Array, path: tuple[str, ...]) -> pa.Array:
    """A struct column with null children added where `path` names a missing field (log semantics)."""
    if not path or not pa.types.is_struct(array.type):
        return array
    struct: pa.StructType = array.type
    names = [struct.field(i).name.lower() for i in range(struct.num_fields)]
    children = array.flatten()
    fields = [struct.field(i) for i in range(struct.num_fields)]
    head = path[0].lower()
    if head in names:
        index = names.index(head)
        child = _with_path(children[index], path[1:])
        if child is children[index]:
            return array
        children[index] = child
        fields[index] = fields[index].with_type(child.type)
    else:
        children.append(pa.nulls(len(array)))
        fields.append(pa.field(path[0], pa.null()))
    mask = array.is_null() if array.null_count else None
    return pa.StructArray.from_arrays(children, fields=fields, mask=mask)


def _run(sql: str, loglake_batch: pa.RecordBatch) -> list[pa.Array]:
    """One query over `loglake_batch` (found by name through DuckDB's replacement scan)."""
    table = _connection().sql(sql).to_arrow_table()
    return [column.combine_chunks() for column in table.columns]


def _select(expressions: list[SqlExpression]) -> str:
    items = ",\n".join(f"{e.sql}\nAS c{i}" for i, e in enumerate(expressions))
    return f"{_PREFIX}{items} FROM {_TABLE}"


class SqlEvaluator:
    """Evaluates named SQL expressions over whole batches, one query per batch.

    Only the referenced columns are scanned. A referenced column missing from the batch reads as NULL, and
    so does a missing field of a struct (`ua.is_bot`). Safe to call from several threads: each thread uses
    its own DuckDB connection.
    """

    def __init__(self, expressions: Mapping[str, SqlExpression], node: str = "") -> None:
        if not expressions:
            raise ValueError("SqlEvaluator needs at least one expression")
        self.node = node
        self._names = list(expressions)
        self._expressions = list(expressions.values())
        self._sql = _select(self._expressions)
        self._alone = [_select([e]) for e in self._expressions]
        paths = sorted({path for e in self._expressions for path in e.columns})
        self._paths: dict[str, list[tuple[str, ...]]] = {}
        for path in paths:
            self._paths.setdefault(path[0].lower(), []).append(path[1:])
        self._names_as_written = {path[0].lower(): path[0] for path in paths}

    @property
    def columns(self) -> frozenset[str]:
        """Top-level column names the expressions read (lower case)."""
        return frozenset(self._paths)

    def _inputs(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[str]]:
        """The referenced columns of `batch` (patched for missing struct fields), nulls for missing ones."""
        arrays: list[pa.Array] = []
        names: list[str] = []
        found: set[str] = set()
        for index, name in enumerate(batch.schema.names):
            key = name.lower()
            if key not in self._paths:
                continue
            column = batch.column(index)
            for rest in self._paths[key]:
                column = _with_path(column, rest)
            arrays.append(column)
            names.append(name)
            found.add(key)
        missing = [self._names_as_written[key] for key in self._paths if key not in found]
        for name in missing:
            arrays.append(pa.nulls(batch.num_rows))
            names.append(name)
        if not arrays:
            arrays, names = [pa.nulls(batch.num_rows)], [_ROWS_COLUMN]
        return pa.RecordBatch.from_arrays(arrays, names=names), missing

    def evaluate(self, batch: pa.RecordBatch) -> Evaluation:
        """One array per expression for `batch`; records whose evaluation fails are listed with their error."""
        inputs, missing = self._inputs(batch)
        try:
            arrays = _run(self._sql, inputs)
        except duckdb.Error as exc:
            return self._isolate(inputs, missing, exc)
        return Evaluation(dict(zip(self._names, arrays)), [], [])

    def _isolate(self, inputs: pa.RecordBatch, missing: list[str], first: duckdb.Error) -> Evaluation:
        """The evaluation of a batch whose query failed: per-row results, failures isolated by bisection."""
        rows = inputs.num_rows
        try:
            types = [array.type for array in _run(self._sql, inputs.slice(0, 0))]
        except duckdb.Error as exc:
            message = self._label(inputs.slice(0, 0), exc, missing)
            log.debug("%s: whole batch of %d records failed: %s", self.node, rows, message)
            return Evaluation({name: pa.nulls(rows) for name in self._names}, list(range(rows)), [message] * rows)
        isolation = _Isolation(self._sql, inputs, lambda part, exc: self._label(part, exc, missing))
        isolation.bisect(first)
        columns = {name: isolation.column(index, kind) for index, (name, kind) in enumerate(zip(self._names, types))}
        failed, errors = isolation.failures()
        log.debug(
            "%s: %d of %d records failed; isolated with %d queries", self.node, len(failed), rows, isolation.queries
        )
        if isolation.lumped:
            log.warning(
                "%s: %d records failed in one batch; after %d queries the rest were not isolated one by one",
                self.node, len(failed), isolation.queries,
            )
        return Evaluation(columns, failed, errors)

    def _label(self, rows: pa.RecordBatch, exc: duckdb.Error, missing: list[str]) -> str:
        """`field: reason` for a failure, naming the expression that fails when there are several."""
        labels = [e.field for e in self._expressions]
        reason = _reason(exc)
        if len(self._expressions) > 1:
            for expression, sql in zip(self._expressions, self._alone):
                try:
                    _run(sql, rows)
                except duckdb.Error as alone:
                    labels, reason = [expression.field], _reason(alone)
                    break
        if missing and isinstance(exc, _BATCH_WIDE_ERRORS):
            shown = ", ".join(f"'{name}'" for name in missing)
            reason += f" (not in this batch, so read as NULL: {shown})"
        return f"{', '.join(labels)}: {reason}"


class _Isolation:
    """Bisection of a failed batch: halves are evaluated recursively until each failure is one record."""

    def __init__(self, sql: str, inputs: pa.RecordBatch, label: Callable[[pa.RecordBatch, duckdb.Error], str]) -> None:
        self.sql = sql
        self.inputs = inputs
        self.label = label
        self.queries = 0
        self.lumped = False
        self.good: list[tuple[int, list[pa.Array]]] = []
        self.bad: list[tuple[int, int, str]] = []

    def bisect(self, first: duckdb.Error) -> None:
        """Evaluate halves of failed parts until each failure is one record or the query budget is spent."""
        stack: list[tuple[int, int, duckdb.Error]] = [(0, self.inputs.num_rows, first)]
        while stack:
            offset, length, error = stack.pop()
            if length == 1:
                self.bad.append((offset, 1, self.label(self.inputs.slice(offset, 1), error)))
                continue
            if self.queries >= MAX_QUERIES_PER_BATCH:
                message = self.label(self.inputs.slice(offset, length), error)
                note = f" [not isolated: failed together with {length - 1} other records of this batch]"
                self.bad.append((offset, length, message + note))
                self.lumped = True
                continue
            half = length // 2
            for part_offset, part_length in ((offset + half, length - half), (offset, half)):
                self.queries += 1
                try:
                    self.good.append((part_offset, _run(self.sql, self.inputs.slice(part_offset, part_length))))
                except duckdb.Error as exc:
                    stack.append((part_offset, part_length, exc))

    def column(self, index: int, kind: pa.DataType) -> pa.Array:
        """Expression `index` over the whole batch: computed parts, nulls for failed records."""
        pieces: list[tuple[int, pa.Array]] = [(offset, arrays[index]) for offset, arrays in self.good]
        pieces += [(offset, pa.nulls(length, kind)) for offset, length, _ in self.bad]
        pieces.sort(key=lambda piece: piece[0])
        return pa.concat_arrays([array for _, array in pieces])

    def failures(self) -> tuple[list[int], list[str]]:
        """Failed row indices in ascending order, and one message per row."""
        failed: list[int] = []
        errors: list[str] = []
        for offset, length, message in sorted(self.bad):
            failed.extend(range(offset, offset + length))
            errors.extend([message] * length)
        return failed, errors
