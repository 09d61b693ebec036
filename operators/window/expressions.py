"""Parsing `aggregate:` entries (`p95: "quantile(bytes, 0.95)"`) when the stage is built; a tiny parser, not eval."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from loglake.operators.window.config import RESERVED_COLUMNS
from loglake.schemas.errors import ConfigError

__all__ = ["AggregateCall", "FUNCTIONS", "MAX_TOP_K", "parse_aggregates"]

MAX_TOP_K = 1000
"""Largest k for `top_k`."""

FUNCTIONS: dict[str, tuple[str, ...]] = {
    "count": (),
    "sum": ("x",),
    "avg": ("x",),
    "min": ("x",),
    "max": ("x",),
    "first": ("x",),
    "last": ("x",),
    "quantile": ("x", "q"),
    "count_distinct": ("x",),
    "top_k": ("x", "k"),
}
"""Aggregate functions and their parameters (`x` a field; `count` also takes one optionally)."""

_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$", re.DOTALL)
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class AggregateCall:
    """One parsed aggregate: output column, function, input field path and numeric argument (q or k)."""

    name: str
    function: str
    field: str | None = None
    argument: float | None = None


def parse_aggregates(aggregate: Mapping[str, str], group_by: Iterable[str]) -> list[AggregateCall]:
    """Every `aggregate:` entry parsed, in order.

    Raises:
        ConfigError: at `aggregate.<name>`: not a call, unknown function (with a did-you-mean), wrong
            arity, a bad field, q outside (0, 1), k outside 1..MAX_TOP_K, or a name taken by a group field
            or a window column.
    """
    groups = set(group_by)
    calls = []
    for name, text in aggregate.items():
        where = f"aggregate.{name}"
        if not name:
            raise ConfigError("output names must not be empty", field="aggregate")
        if name in RESERVED_COLUMNS:
            raise ConfigError(f"output '{name}' clashes with the window rows' own column; window rows have {', '.join(RESERVED_COLUMNS)}", field=where)
        if name in groups:
            raise ConfigError(f"output '{name}' clashes with the group_by field of the same name", field=where)
        calls.append(_parse(name, text, where))
    return calls


def _parse(name: str, text: str, where: str) -> AggregateCall:
    match = _CALL.match(text)
    if match is None:
        raise ConfigError(f"'{text}' is not an aggregate; write a call such as count(), sum(bytes) or quantile(bytes, 0.95)", field=where)
    function = match.group(1).lower()
    inner = match.group(2).strip()
    args = [arg.strip() for arg in inner.split(",")] if inner else []
    if function not in FUNCTIONS:
        close = difflib.get_close_matches(function, list(FUNCTIONS), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(FUNCTIONS)}"
        raise ConfigError(f"unknown aggregate function '{function}'{hint}", field=where)
    if function == "count":
        if args in ([], ["*"]):
            return AggregateCall(name, function)
        if len(args) != 1:
            raise ConfigError(f"count takes no argument or one field, got {len(args)} arguments", field=where)
    params = FUNCTIONS[function]
    if len(args) != len(params) and function != "count":
        raise ConfigError(f"{function} takes {len(params)} argument{'s' if len(params) > 1 else ''} ({', '.join(params)}), got {len(args)}", field=where)
    if not _PATH.match(args[0]):
        raise ConfigError(f"{function}: '{args[0]}' is not a field name (letters, digits and '_', dotted for struct fields)", field=where)
    if function == "quantile":
        return AggregateCall(name, function, args[0], _quantile(args[1], where))
    if function == "top_k":
        return AggregateCall(name, function, args[0], _top_k(args[1], where))
    return AggregateCall(name, function, args[0])


def _quantile(text: str, where: str) -> float:
    try:
        q = float(text)
    except ValueError:
        q = float("nan")
    if not 0 < q < 1:
        raise ConfigError(f"quantile: q must be a number between 0 and 1 (exclusive), got '{text}'", field=where)
    return q


def _top_k(text: str, where: str) -> float:
    if not text.isdigit() or not 1 <= int(text) <= MAX_TOP_K:
        raise ConfigError(f"top_k: k must be a whole number from 1 to {MAX_TOP_K}, got '{text}'", field=where)
    return float(int(text))
