"""Simple SQL conditions, evaluated with Arrow's compute kernels instead of a DuckDB query.

A DuckDB query costs 1-1.5 ms a batch whatever it computes (binding, planning, handing Arrow data over and
back), where `response >= 500` takes Arrow 0.03 ms; routes and filters mostly are such conditions. This
module turns an expression's syntax tree (DuckDB's own parse, from `json_serialize_sql`) into Arrow calls
when every part of it is one of:

- a column or struct field (`response`, `ua.is_bot`), named as DuckDB resolves it (case-insensitively);
- an integer, text or boolean literal;
- `=`, `<>`/`!=`, `<`, `<=`, `>`, `>=`, `IS [NOT] DISTINCT FROM` between a column and a literal;
- `[NOT] IN (literals)`, `IS [NOT] NULL`, `AND`, `OR`, `NOT`.

Each batch is checked before it is computed: comparisons only between signed integer columns and integer
literals, text columns and text literals, boolean columns and boolean literals, and `AND`/`OR`/`NOT` only over
booleans. Anything else (a float column, whose NaN DuckDB orders above every number where Arrow's
comparisons are false; a column missing from the batch; a text column compared with a number, which DuckDB
casts and may fail on) makes `evaluate` return None, and the caller runs the query in DuckDB. In the shapes
it accepts, the results are DuckDB's: NULL in, NULL out, three-valued `AND`/`OR`, text compared byte by byte
(tests/operators/test_sql_arrow_plan.py compares both engines over random batches).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

import pyarrow as pa
import pyarrow.compute as pc

from loglake.operators.sql.session import TABLE

__all__ = ["ArrowPlan", "arrow_plan"]

_COMPARISONS: dict[str, str] = {
    "COMPARE_EQUAL": "equal",
    "COMPARE_NOTEQUAL": "not_equal",
    "COMPARE_LESSTHAN": "less",
    "COMPARE_LESSTHANOREQUALTO": "less_equal",
    "COMPARE_GREATERTHAN": "greater",
    "COMPARE_GREATERTHANOREQUALTO": "greater_equal",
}
_MIRRORED = {"less": "greater", "less_equal": "greater_equal", "greater": "less", "greater_equal": "less_equal"}
"""The comparison with its sides swapped (`500 <= response` is `response >= 500`)."""
_DISTINCT = {"COMPARE_DISTINCT_FROM": True, "COMPARE_NOT_DISTINCT_FROM": False}
_INT64 = (-(2**63), 2**63 - 1)

Literal = Union[int, str, bool]


def _kind(value: Literal) -> str:
    return "boolean" if isinstance(value, bool) else "integer" if isinstance(value, int) else "text"


def _column_kind(data_type: pa.DataType) -> str | None:
    """The literal kind a column of this type is compared with, None for types left to DuckDB."""
    if pa.types.is_boolean(data_type):
        return "boolean"
    if pa.types.is_signed_integer(data_type):
        return "integer"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "text"
    return None


@dataclass(frozen=True)
class _Column:
    path: tuple[str, ...]

    def array(self, batch: pa.RecordBatch) -> pa.Array | None:
        """The column or struct field as DuckDB resolves the name (case-insensitively), None if ambiguous or absent."""
        names = [index for index, name in enumerate(batch.schema.names) if name.lower() == self.path[0].lower()]
        if len(names) != 1:
            return None
        array: pa.Array = batch.column(names[0])
        for part in self.path[1:]:
            if not pa.types.is_struct(array.type):
                return None
            struct: pa.StructType = array.type
            fields = [index for index in range(struct.num_fields) if struct.field(index).name.lower() == part.lower()]
            if len(fields) != 1:
                return None
            array = pc.struct_field(array, [fields[0]])  # null where the struct is, as in DuckDB
        return array

    def compared_with(self, batch: pa.RecordBatch, literal: Literal) -> pa.Array | None:
        """The column, if its type is one compared with literals of `literal`'s kind."""
        values = self.array(batch)
        return values if values is not None and _column_kind(values.type) == _kind(literal) else None


@dataclass(frozen=True)
class _Compare:
    column: _Column
    function: str
    literal: Literal

    def evaluate(self, batch: pa.RecordBatch) -> pa.Array | None:
        values = self.column.compared_with(batch, self.literal)
        return None if values is None else getattr(pc, self.function)(values, pa.scalar(self.literal))


@dataclass(frozen=True)
class _Distinct:
    """`IS DISTINCT FROM` (`distinct`) or `IS NOT DISTINCT FROM`: a comparison in which NULL is a value."""

    column: _Column
    literal: Literal
    distinct: bool

    def evaluate(self, batch: pa.RecordBatch) -> pa.Array | None:
        values = self.column.compared_with(batch, self.literal)
        if values is None:
            return None
        equal = pc.fill_null(pc.equal(values, pa.scalar(self.literal)), False)  # the literal is never NULL
        result: pa.Array = pc.invert(equal) if self.distinct else equal
        return result


@dataclass(frozen=True)
class _In:
    column: _Column
    literals: tuple[Literal, ...]

    def evaluate(self, batch: pa.RecordBatch) -> pa.Array | None:
        values = self.column.array(batch)
        kind = _column_kind(values.type) if values is not None else None
        if values is None or kind is None or any(_kind(literal) != kind for literal in self.literals):
            return None
        found = pc.is_in(values, value_set=pa.array(self.literals, values.type))
        result: pa.Array = pc.if_else(pc.is_valid(values), found, pa.scalar(None, pa.bool_()))
        return result


@dataclass(frozen=True)
class _IsNull:
    column: _Column
    negated: bool

    def evaluate(self, batch: pa.RecordBatch) -> pa.Array | None:
        values = self.column.array(batch)
        if values is None or pa.types.is_floating(values.type):  # DuckDB: NaN is not NULL; keep that to DuckDB too
            return None
        result: pa.Array = pc.is_valid(values) if self.negated else pc.is_null(values)
        return result


@dataclass(frozen=True)
class _Truth:
    """A boolean column used as a condition (`ua.is_bot`)."""

    column: _Column

    def evaluate(self, batch: pa.RecordBatch) -> pa.Array | None:
        values = self.column.array(batch)
        return values if values is not None and pa.types.is_boolean(values.type) else None


@dataclass(frozen=True)
class _Logic:
    """`AND`/`OR` of its parts (`function`: `and_kleene`/`or_kleene`), or `NOT` of its one part."""

    function: str
    parts: tuple[Node, ...]

    def evaluate(self, batch: pa.RecordBatch) -> pa.Array | None:
        arrays = [part.evaluate(batch) for part in self.parts]
        if any(array is None for array in arrays):
            return None
        if self.function == "invert":
            inverted: pa.Array = pc.invert(arrays[0])
            return inverted
        result = arrays[0]
        for array in arrays[1:]:
            result = getattr(pc, self.function)(result, array)
        return result


Node = Union[_Compare, _Distinct, _In, _IsNull, _Truth, _Logic]


class ArrowPlan:
    """Named expressions computed by Arrow; `evaluate` gives their arrays, or None to leave the batch to DuckDB."""

    def __init__(self, nodes: Mapping[str, Node]) -> None:
        self._nodes = dict(nodes)

    def evaluate(self, batch: pa.RecordBatch) -> dict[str, pa.Array] | None:
        """One boolean array per expression over `batch`'s columns, or None if one of them is not for Arrow here."""
        results: dict[str, pa.Array] = {}
        for name, node in self._nodes.items():
            array = node.evaluate(batch)
            if array is None:
                return None
            results[name] = array
        return results


def arrow_plan(trees: Mapping[str, dict[str, Any]]) -> ArrowPlan | None:
    """The plan of named expression trees (DuckDB's `json_serialize_sql` of each), None unless all are simple."""
    nodes: dict[str, Node] = {}
    for name, tree in trees.items():
        node = _condition(tree)
        if node is None:
            return None
        nodes[name] = node
    return ArrowPlan(nodes)


def _condition(tree: Any) -> Node | None:
    """A node computing a boolean, or None when some part is not in the supported subset."""
    if not isinstance(tree, dict):
        return None
    kind, operation = tree.get("class"), tree.get("type")
    children = tree.get("children") or []
    if kind == "COLUMN_REF":
        column = _column(tree)
        return _Truth(column) if column is not None else None
    if kind == "CONJUNCTION" and operation in ("CONJUNCTION_AND", "CONJUNCTION_OR"):
        return _logic("and_kleene" if operation == "CONJUNCTION_AND" else "or_kleene", children)
    if kind == "OPERATOR" and operation == "OPERATOR_NOT" and len(children) == 1:
        return _logic("invert", children)
    if kind == "OPERATOR" and operation in ("OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL") and len(children) == 1:
        column = _column(children[0])
        return _IsNull(column, operation == "OPERATOR_IS_NOT_NULL") if column is not None else None
    if kind == "OPERATOR" and operation == "COMPARE_IN" and len(children) > 1:
        column, literals = _column(children[0]), [_literal(child) for child in children[1:]]
        if column is None or any(literal is None for literal in literals):
            return None
        return _In(column, tuple(literal for literal in literals if literal is not None))
    if kind == "COMPARISON":
        return _comparison(str(operation), tree.get("left"), tree.get("right"))
    return None


def _logic(function: str, children: list[Any]) -> _Logic | None:
    parts = [_condition(child) for child in children]
    if not parts or any(part is None for part in parts):
        return None
    return _Logic(function, tuple(part for part in parts if part is not None))


def _comparison(operation: str, left: Any, right: Any) -> Node | None:
    column, literal, mirrored = _column(left), _literal(right), False
    if column is None:
        column, literal, mirrored = _column(right), _literal(left), True
    if column is None or literal is None:
        return None
    if operation in _DISTINCT:
        return _Distinct(column, literal, _DISTINCT[operation])
    function = _COMPARISONS.get(operation)
    if function is None:
        return None
    return _Compare(column, _MIRRORED.get(function, function) if mirrored else function, literal)


def _column(tree: Any) -> _Column | None:
    if not isinstance(tree, dict) or tree.get("class") != "COLUMN_REF":
        return None
    path = tuple(str(part) for part in tree.get("column_names", []))
    if len(path) > 1 and path[0].lower() == TABLE:
        path = path[1:]
    return _Column(path) if path else None


def _literal(tree: Any) -> Literal | None:
    """An integer (within BIGINT), text or boolean constant; None for any other (NULL, decimals, casts)."""
    if not isinstance(tree, dict) or tree.get("class") != "CONSTANT":
        return None
    literal = tree.get("literal") or {}
    kind, text = literal.get("kind"), literal.get("text")
    if not isinstance(text, str):
        return None
    if kind == "STRING":
        return text
    if kind == "BOOLEAN" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind == "INTEGER":
        number = int(text)
        return number if _INT64[0] <= number <= _INT64[1] else None
    return None

