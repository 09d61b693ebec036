"""One syslog line at a time: the fields it holds, or the first rule it breaks.

A line is accepted by the grammar's regex (with the RFC 5424 length limits spelled out) and its values are
checked and converted by the grammar's functions; a line the regex rejects is walked field by field only to
say why. `loglake parse syslog` prints these results, and the batch parser falls back on them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from loglake.parsers.syslog.grammar import (
    DEFAULT_PRIORITY,
    FACILITIES,
    HEADER_LIMITS,
    PRI_PATTERN,
    SD_NAME_CHAR,
    SD_NAME_LIMIT,
    SD_VALUE,
    SEVERITIES,
    Format,
    TimeRules,
    decode_structured_data,
    line_pattern,
    quote,
    timestamp_5424,
)
from loglake.schemas.parsing import ParseFailure

__all__ = ["parse_line", "as_output"]

_MSG = r"(?P<msg>[\s\S]*)\Z"
_LINE_5424 = re.compile(line_pattern("rfc5424", r"\Z", bounded=True) + _MSG)
_LINE_3164 = re.compile(line_pattern("rfc3164", r"\Z", bounded=True) + _MSG)
_LOOKS_5424 = re.compile(r"<[0-9]{1,3}>[0-9]{1,3}(?: |\Z)")
_PRI = re.compile(f"<(?:{PRI_PATTERN})>")
_PRINTUSASCII = re.compile(r"[!-~]*")
_SD_NAME = re.compile(f"{SD_NAME_CHAR}*")
_SD_VALUE = re.compile(SD_VALUE)
_NON_SPACE = re.compile(r"[^ ]*")
_BOM = "\ufeff"
_HEADER = (("VERSION", ""), ("TIMESTAMP", ""), ("HOSTNAME", "hostname"), ("APP-NAME", "appname"),
           ("PROCID", "procid"), ("MSGID", "msgid"))


def parse_line(line: str, rfc: Format, times: TimeRules) -> dict[str, Any] | ParseFailure:
    """The fields of one line, in output order, absent ones left out (`timestamp` as an aware datetime)."""
    if not line.strip():
        return ParseFailure("empty line")
    if rfc != "rfc3164" and (match := _LINE_5424.match(line)) is not None:
        return _fields_5424(match)
    if rfc != "rfc5424" and (match := _LINE_3164.match(line)) is not None:
        return _fields_3164(match, times)
    if rfc == "rfc5424" or (rfc == "auto" and _LOOKS_5424.match(line)):
        return ParseFailure(_explain_5424(line))
    return ParseFailure(_explain_3164(line, times))


def as_output(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields as `parse_lines` gives them: the timestamp in ISO 8601 with the line's own offset."""
    moment = fields.get("timestamp")
    if isinstance(moment, datetime):
        return {**fields, "timestamp": moment.isoformat()}
    return fields


def _priority(pri: int) -> dict[str, Any]:
    return {"priority": pri, "facility": FACILITIES[pri >> 3], "severity": SEVERITIES[pri & 7]}


def _fields_5424(match: re.Match[str]) -> dict[str, Any] | ParseFailure:
    fields = _priority(int(match["pri"]))
    fields["version"] = 1
    if match["ts"] != "-":
        moment = timestamp_5424(match["ts"])
        if isinstance(moment, ParseFailure):
            return moment
        fields["timestamp"] = moment
    for name in HEADER_LIMITS:
        if match[name] != "-":
            fields[name] = match[name]
    if match["sd"] != "-":
        elements = decode_structured_data(match["sd"])
        if isinstance(elements, ParseFailure):
            return elements
        fields["structured_data"] = elements
    if match["sep"]:
        message = match["msg"]
        fields["message"] = message[1:] if message.startswith(_BOM) else message
    return fields


def _fields_3164(match: re.Match[str], times: TimeRules) -> dict[str, Any] | ParseFailure:
    fields = _priority(int(match["pri"]) if match["pri"] else DEFAULT_PRIORITY)
    moment = times.resolve(match["ts"])
    if isinstance(moment, ParseFailure):
        return moment
    fields["timestamp"] = moment
    fields["hostname"] = match["hostname"]
    if match["tag"]:
        fields["appname"] = match["tag"]
        if match["pid"]:
            fields["procid"] = match["pid"]
    if match["sep"]:
        fields["message"] = match["msg"]
    return fields


def _read_pri(line: str) -> int | ParseFailure:
    """Where the text after PRI starts: 0 without one; a PRI that is not 0–191 without leading zeros fails."""
    if not line.startswith("<"):
        return 0
    match = _PRI.match(line)
    if match is not None:
        return match.end()
    end = line.find(">", 1, 6)
    return ParseFailure(f"invalid PRI {quote(line[: end + 1] if end > 0 else line, 8)}")


def _field_problem(label: str, value: str, limit: int) -> str | None:
    if value == "-":
        return None
    printable = _PRINTUSASCII.match(value)
    if printable is not None and printable.end() < len(value):
        return f"invalid character {value[printable.end()]!r} in {label}"
    if len(value) > limit:
        return f"{label} longer than {limit} characters"
    return None


def _explain_5424(line: str) -> str:
    start = _read_pri(line)
    if isinstance(start, ParseFailure):
        return start.reason
    if start == 0:
        return f"expected '<PRI>' at the start of an RFC 5424 line, got {quote(line)}"
    parts = line[start:].split(" ", len(_HEADER))
    for index, (label, name) in enumerate(_HEADER):
        if index >= len(parts) or (parts[index] == "" and index == len(parts) - 1):
            return f"truncated line: expected {label}"
        value = parts[index]
        if value == "":
            return f"empty {label}: fields are separated by a single space"
        problem = (
            _version_problem(value) if label == "VERSION"
            else _timestamp_problem(value) if label == "TIMESTAMP"
            else _field_problem(label, value, HEADER_LIMITS[name])
        )
        if problem is not None:
            return problem
    if len(parts) <= len(_HEADER) or parts[-1] == "":
        return "truncated line: expected STRUCTURED-DATA"
    if parts[-1].startswith(" "):
        return "empty STRUCTURED-DATA: fields are separated by a single space"
    return _structured_data_problem(parts[-1]) or "not an RFC 5424 line"


def _version_problem(value: str) -> str | None:
    if not re.fullmatch(r"[1-9][0-9]{0,2}", value):
        return f"invalid VERSION {quote(value, 8)}"
    return None if value == "1" else f"unsupported VERSION {value} (only 1 is defined)"


def _timestamp_problem(value: str) -> str | None:
    moment = None if value == "-" else timestamp_5424(value)
    return moment.reason if isinstance(moment, ParseFailure) else None


def _structured_data_problem(text: str) -> str | None:
    """The first STRUCTURED-DATA rule `text` (SD and MSG) breaks, walking it element by element."""
    if text.startswith("-"):
        pos = 1
    elif not text.startswith("["):
        return f"invalid STRUCTURED-DATA: expected '-' or '[', got {quote(text)}"
    else:
        pos, seen = 0, set()
        while pos < len(text) and text[pos] == "[":
            sd_id, pos = _sd_name(text, pos + 1)
            problem = _sd_name_problem("SD-ID", sd_id, text, pos) or (f"duplicate SD-ID {sd_id!r}" if sd_id in seen else None)
            if problem is not None:
                return problem
            seen.add(sd_id)
            while pos < len(text) and text[pos] == " ":
                name, pos = _sd_name(text, pos + 1)
                problem = _sd_name_problem("PARAM-NAME", name, text, pos)
                if problem is not None:
                    return problem
                if not text.startswith('="', pos):
                    return f"expected '=\"' after PARAM-NAME {name!r}, got {quote(text[pos:pos + 2])}"
                end = _SD_VALUE.match(text, pos + 2)
                pos = end.end() if end is not None else pos + 2
                if pos >= len(text) or text[pos] == "\\":
                    return f"truncated line: unterminated PARAM-VALUE of {name!r}"
                if text[pos] == "]":
                    return f"unescaped ']' in PARAM-VALUE of {name!r}"
                pos += 1
            if pos >= len(text):
                return f"truncated line: unterminated SD-ELEMENT {sd_id!r}"
            if text[pos] != "]":
                return f"expected ' ' or ']' in SD-ELEMENT {sd_id!r}, got {quote(text[pos:], 12)}"
            pos += 1
    if pos < len(text) and text[pos] != " ":
        return f"expected a space after STRUCTURED-DATA, got {quote(text[pos:])}"
    return None


def _sd_name(text: str, pos: int) -> tuple[str, int]:
    match = _SD_NAME.match(text, pos)
    end = match.end() if match is not None else pos
    return text[pos:end], end


def _sd_name_problem(label: str, name: str, text: str, pos: int) -> str | None:
    if not name:
        if pos >= len(text):
            return f"truncated line: expected {label}"
        return f"invalid character {text[pos]!r} at the start of {label}" if text[pos] not in " =]\"" else f"empty {label}"
    if len(name) > SD_NAME_LIMIT:
        return f"{label} longer than {SD_NAME_LIMIT} characters: {quote(name)}"
    if pos < len(text) and text[pos] not in ' =]"':
        return f"invalid character {text[pos]!r} in {label} {name!r}"
    return None


def _explain_3164(line: str, times: TimeRules) -> str:
    start = _read_pri(line)
    if isinstance(start, ParseFailure):
        return start.reason
    if start == len(line):
        return "truncated line: expected TIMESTAMP"
    moment = times.resolve(line[start:start + 15])
    if isinstance(moment, ParseFailure):
        if moment.reason.startswith("expected TIMESTAMP"):
            return f"expected TIMESTAMP 'Mmm dd hh:mm:ss', got {quote(line[start:])}"
        return moment.reason
    pos = start + 15
    if pos >= len(line) - 1 and line[pos:] in ("", " "):
        return "truncated line: expected HOSTNAME"
    if line[pos] != " ":
        return f"expected a space after TIMESTAMP, got {quote(line[pos:])}"
    host = _NON_SPACE.match(line, pos + 1)
    hostname = line[pos + 1:host.end()] if host is not None else ""
    if not hostname:
        return "empty HOSTNAME: fields are separated by a single space"
    return _field_problem("HOSTNAME", hostname, len(hostname)) or "not an RFC 3164 line"
