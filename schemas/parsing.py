"""The line-parser contract: what parse stages offer besides `process`, so `loglake parse` runs the same code.

A parse stage (grok, syslog, json, csv, kv, regex, presets) implements `parse_lines`: one result per input
line, in order — a dict of the fields the line yields (captures, with `:int`/`:float` conversions applied;
nested values as dicts and lists; integers of any size exact), or a `ParseFailure` saying why the line
did not parse. The stage's `process` and the CLI both rest on it (the stage may also have a faster
vectorised path, which must agree with it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["ParseFailure", "LineParser", "ParseResult"]


@dataclass(frozen=True)
class ParseFailure:
    """A line that did not parse, and why (shown to users as `_error`)."""

    reason: str


ParseResult = dict[str, Any] | ParseFailure


@runtime_checkable
class LineParser(Protocol):
    """A stage that can parse plain lines one by one."""

    def parse_lines(self, lines: Sequence[str]) -> list[ParseResult]:
        """One result per line, in order; never raises for a bad line."""
        ...
