"""Binding SQL expressions to the types of the fields they read, before a run.

DuckDB binds a query over a zero-row Arrow batch just as over a full one, so a batch of the known field
types gives each expression's result type, or the type error that would fail every record, without data.
An expression that reads a field whose type is not known is not bound: no guess, so no false alarm.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

import duckdb
import pyarrow as pa

from loglake.operators.sql.evaluate import SqlEvaluator
from loglake.operators.sql.expression import SqlExpression
from loglake.operators.sql.session import quote, reason
from loglake.schemas.errors import ConfigError

__all__ = ["TypeNote", "result_types", "type_problems"]

TypeNote = tuple[str, str | None]
"""Why a field has its type (`grok captures text, in node 'parse'`) and how to get another, if there is a way
besides a cast stage (`capture it as %{NUMBER:response:int}`)."""

_COMPARE = re.compile(r"Cannot compare values of type (.+?) and type (.+?) - an explicit cast is required")
_MIX = re.compile(r"Cannot mix values of type (.+?) and (.+?) in (.+?) clause - an explicit cast is required")
_NO_FUNCTION = re.compile(r"No function matches the given name and argument types '(.+?)\((.*)\)'")
_OPERATORS = {"~~": "LIKE", "!~~": "NOT LIKE", "~~*": "ILIKE", "!~~*": "NOT ILIKE", "~~~": "GLOB", "!~~~": "NOT GLOB"}
_WORDS = (
    (re.compile(r"(VARCHAR|STRING_LITERAL)"), "text"),
    (re.compile(r"INTEGER_LITERAL"), "a number"),
    (re.compile(r"U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)"), "an integer"),
    (re.compile(r"(FLOAT|DOUBLE|DECIMAL.*)"), "a float"),
    (re.compile(r"BOOLEAN"), "a boolean"),
    (re.compile(r"TIMESTAMP.*"), "a timestamp"),
    (re.compile(r"DATE"), "a date"),
    (re.compile(r"INTERVAL"), "an interval"),
    (re.compile(r"STRUCT\(.*"), "a struct"),
    (re.compile(r".*\[\]"), "a list"),
)
"""DuckDB type names in plain words (matched whole, first match wins)."""


def _duckdb_type(name: str) -> str:
    for pattern, words in _WORDS:
        if pattern.fullmatch(name.strip()):
            return words
    return name.strip()


def _arrow_type(kind: pa.DataType) -> str:
    """An Arrow type in plain words."""
    if _is_text(kind):
        return "text"
    if pa.types.is_integer(kind):
        return "an integer"
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "a float"
    if pa.types.is_boolean(kind):
        return "a boolean"
    if pa.types.is_timestamp(kind):
        return "a timestamp"
    if pa.types.is_date(kind):
        return "a date"
    if pa.types.is_struct(kind):
        return "a struct"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return "a list"
    return str(kind)


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind))


def _plain_reason(exc: duckdb.Error) -> str:
    """DuckDB's binding error in plain words (`cannot compare text with a number`), or as DuckDB says it."""
    text = reason(exc)
    text = text.split(": ", 1)[1] if text.startswith(("Binder Error: ", "Conversion Error: ")) else text
    found = _COMPARE.search(text)
    if found:
        return f"cannot compare {_duckdb_type(found[1])} with {_duckdb_type(found[2])}"
    found = _MIX.search(text)
    if found:
        return f"cannot mix {_duckdb_type(found[1])} and {_duckdb_type(found[2])} in {found[3]}"
    found = _NO_FUNCTION.search(text)
    if found:
        shown = _OPERATORS.get(found[1]) or (f"{found[1]}()" if found[1].isidentifier() else found[1])
        arguments = " and ".join(_duckdb_type(part) for part in found[2].split(", ")) if found[2] else "no argument"
        return f"there is no {shown} for {arguments}"
    return text


def _case_insensitive(types: Mapping[str, pa.DataType]) -> dict[str, str | None]:
    """Lower-case name → the name as in `types`; None where two names differ only in case (DuckDB cannot tell them apart)."""
    names: dict[str, str | None] = {}
    for name in types:
        key = name.lower()
        names[key] = None if key in names else name
    return names


def _reads(expression: SqlExpression, names: Mapping[str, str | None]) -> list[str] | None:
    """The known fields (named as in the types) that `expression` reads; None when it reads one of unknown type."""
    read: list[str] = []
    for head in sorted({path[0].lower() for path in expression.columns}):
        name = names.get(head)
        if name is None:
            return None
        read.append(name)
    return read


def _empty(types: Mapping[str, pa.DataType], names: list[str]) -> pa.RecordBatch:
    """A batch of no rows with columns `names` of their known types."""
    return pa.RecordBatch.from_arrays([pa.array([], types[name]) for name in names], names=names)


def _bound(evaluator: SqlEvaluator, types: Mapping[str, pa.DataType]) -> Iterator[tuple[str, list[str], pa.DataType | duckdb.Error]]:
    """Each expression whose fields all have known types: its name, the fields it reads, its type or its error."""
    names = _case_insensitive(types)
    for name, expression in evaluator.expressions.items():
        read = _reads(expression, names)
        if read is None:
            continue
        try:
            yield name, read, evaluator.result_type(name, _empty(types, read))
        except duckdb.Error as exc:
            yield name, read, exc


def result_types(evaluator: SqlEvaluator, types: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
    """The result type of each expression that reads only fields of known `types` and binds to them."""
    return {name: found for name, _, found in _bound(evaluator, types) if isinstance(found, pa.DataType)}


def type_problems(evaluator: SqlEvaluator, types: Mapping[str, pa.DataType], notes: Mapping[str, TypeNote]) -> list[ConfigError]:
    """A ConfigError (at the expression's config key) for each expression that cannot bind to the known field types.

    `types` are the fields known to reach the stage; `notes` say where some got their type, for the advice
    given when text is used as a number.
    """
    problems: list[ConfigError] = []
    for name, read, found in _bound(evaluator, types):
        if isinstance(found, pa.DataType):
            continue
        expression = evaluator.expressions[name]
        culprits = _text_read_as_number(evaluator, name, types, read)
        if culprits:
            advice = "; ".join(_advice(field, notes.get(field)) for field in culprits)
        else:
            advice = ", ".join(f"{field} is {_arrow_type(types[field])}" for field in read) or "it reads no field"
        message = f"SQL expression {quote(expression.text)} fails on every record: {_plain_reason(found)}; {advice}"
        problems.append(ConfigError(message, field=expression.field))
    return problems


def _text_read_as_number(evaluator: SqlEvaluator, name: str, types: Mapping[str, pa.DataType], read: list[str]) -> list[str]:
    """The text fields that, as integers, would let expression `name` bind: one alone if one will do, else all."""
    text = [field for field in read if _is_text(types[field])]
    tries = [[field] for field in text] + ([text] if len(text) > 1 else [])
    for fields in tries:
        retyped = {**types, **{field: pa.int64() for field in fields}}
        try:
            evaluator.result_type(name, _empty(retyped, read))
        except duckdb.Error:
            continue
        return fields
    return []


def _advice(field: str, note: TypeNote | None) -> str:
    """`response is text (why); capture it as … or convert it with a cast stage (…)`."""
    why, remedy = note if note is not None else (None, None)
    said = f"{field} is text" + (f" ({why})" if why else "")
    cast = f"convert it with a cast stage ({{type: cast, fields: {{{field}: int}}}})"
    return f"{said}; {remedy} or {cast}" if remedy else f"{said}; {cast}"
