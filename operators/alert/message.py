"""What a notification says: the `summary` template, and the `json` and `slack` bodies built from one row.

The `json` body (one object, UTF-8):

    {"status": "firing",                      # or "resolved"
     "alert": "error_rate",                   # the sink's node name
     "group": {"service": "blog"},            # the group_by columns ({} without grouping)
     "condition": "errors / requests > 0.05",
     "summary": "blog: 12 of 130 failed",     # the rendered `summary`, or null
     "values": {"requests": 130, "errors": 12},   # the row's other columns
     "window_start": "2015-05-17T10:05:00Z", "window_end": "2015-05-17T10:06:00Z",
     "since": "2015-05-17T10:01:00Z"}         # event time the condition started holding

For `firing` the row is the one that made the alert fire; for `resolved`, the first row where the
condition was false again. Values are JSON as the `stdout` sink writes them (timestamps in ISO 8601 UTC).
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import orjson

from loglake.schemas.errors import ConfigError

__all__ = ["Summary", "Notification", "BODIES", "iso"]

log = logging.getLogger(__name__)

_CONVERT: dict[str, Callable[[object], str]] = {"r": repr, "s": str, "a": ascii}
_HINT = "write {column} placeholders and {{ }} for literal braces"


def iso(moment: datetime) -> str:
    """`2015-05-17T10:05:00Z`: an aware datetime in ISO 8601 UTC."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class _Part:
    literal: str
    column: str | None
    conversion: str | None
    spec: str


class Summary:
    """A `summary:` template (`str.format` syntax), checked when the pipeline is built.

    Placeholders name columns only (`{errors}`, `{rate:.1%}`); positional (`{}`), attribute and index
    (`{a.b}`, `{a[0]}`) and nested (`{x:{width}}`) fields are rejected. NULL renders as `null`; a
    format spec that does not fit a value's type falls back to the plain value (logged once).
    """

    def __init__(self, template: str, node: str = "") -> None:
        self.template = template
        self.node = node
        self._parts = self._parse(template)
        self.columns = frozenset(part.column for part in self._parts if part.column is not None)
        """Every column the template reads."""
        self._misfits: set[str] = set()

    @staticmethod
    def _parse(template: str) -> list[_Part]:
        def problem(text: str) -> ConfigError:
            return ConfigError(f"summary {template!r}: {text}", field="summary")

        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise problem(f"{exc}; {_HINT}") from None
        parts = []
        for literal, column, spec, conversion in parsed:
            if column is not None:
                if not column.strip() or column.isdigit():
                    raise problem(f"positional placeholder {{{column}}}; name a column, e.g. {{errors}}")
                if column != column.strip() or any(c in column for c in ".["):
                    raise problem(f"placeholder {{{column}}} must be a column name, exactly as in the rows")
                if conversion is not None and conversion not in _CONVERT:
                    raise problem(f"unknown conversion '!{conversion}' in {{{column}}}; use !r, !s or !a")
                if "{" in (spec or ""):
                    raise problem(f"nested placeholder in the format of {{{column}}}")
                if spec and not _spec_fits_something(spec):
                    raise problem(f"format '{spec}' of {{{column}}} fits neither numbers nor text")
            parts.append(_Part(literal, column, conversion, spec or ""))
        return parts

    def render(self, row: Mapping[str, Any]) -> str:
        """The text for one row (a JSON-ready mapping of column → value; every column of `columns` present)."""
        out: list[str] = []
        for part in self._parts:
            out.append(part.literal)
            if part.column is not None:
                out.append(self._field(part, row[part.column]))
        return "".join(out)

    def _field(self, part: _Part, value: Any) -> str:
        if value is None:
            return "null"
        if part.conversion is not None:
            value = _CONVERT[part.conversion](value)
        try:
            return format(value, part.spec)
        except (TypeError, ValueError) as exc:
            if part.column not in self._misfits:
                self._misfits.add(str(part.column))
                log.warning("%s: summary {%s:%s} does not fit %r (%s); the plain value is shown", self.node, part.column, part.spec, value, exc)
            return str(value)


def _spec_fits_something(spec: str) -> bool:
    for sample in (0.5, 1, "text"):
        try:
            format(sample, spec)
            return True
        except ValueError:
            continue
    return False


@dataclass(frozen=True)
class Notification:
    """One message about one group: fired or resolved, with the row that caused it (JSON-ready values)."""

    status: Literal["firing", "resolved"]
    alert: str
    group: dict[str, Any]
    condition: str
    summary: str | None
    values: dict[str, Any]
    window_start: Any
    window_end: Any
    since: datetime

    def group_text(self) -> str:
        """`service=blog, host=web1` (`all` without grouping)."""
        return ", ".join(f"{name}={value}" for name, value in self.group.items()) or "all"

    def json_body(self) -> bytes:
        """The `json` format (see the module docstring)."""
        body = {
            "status": self.status, "alert": self.alert, "group": self.group, "condition": self.condition,
            "summary": self.summary, "values": self.values,
            "window_start": self.window_start, "window_end": self.window_end, "since": iso(self.since),
        }
        return orjson.dumps(body, default=str)

    def slack_body(self) -> bytes:
        """The `slack` format: `{"text": …}` in Slack's mrkdwn, for an incoming webhook."""
        icon, word = (":rotating_light:", "FIRING") if self.status == "firing" else (":white_check_mark:", "RESOLVED")
        detail = self.summary or ", ".join(f"{name}={value}" for name, value in self.values.items())
        lines = [
            f"{icon} *{word}* {_slack(self.alert)} ({_slack(self.group_text())}): {_slack(detail)}",
            f"`{_slack(self.condition)}` since {iso(self.since)}; window {self.window_start} – {self.window_end}",
        ]
        return orjson.dumps({"text": "\n".join(lines)})


def _slack(text: str) -> str:
    """Text with the three characters Slack's mrkdwn reserves escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


BODIES: dict[str, Callable[[Notification], bytes]] = {"json": Notification.json_body, "slack": Notification.slack_body}
"""`format:` value → body builder."""
