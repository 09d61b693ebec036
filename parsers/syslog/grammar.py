"""The syslog grammar shared by the per-line and the batch parser: tables, regex fragments, field values.

Both parsers build their regular expressions from the fragments below (Python's `re` for single lines, RE2
through pyarrow for whole batches), so one grammar decides what a valid line is; the functions here turn
the matched text into values (calendar checks, the RFC 3164 year, structured data) for both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Literal

from loglake.schemas.parsing import ParseFailure

__all__ = [
    "FACILITIES",
    "SEVERITIES",
    "DEFAULT_PRIORITY",
    "HEADER_LIMITS",
    "SD_NAME_LIMIT",
    "Format",
    "TimeRules",
    "StructuredData",
    "PRI_PATTERN",
    "SD_NAME_CHAR",
    "SD_VALUE",
    "line_pattern",
    "quote",
    "timestamp_5424",
    "valid_date",
    "decode_structured_data",
]

Format = Literal["auto", "rfc3164", "rfc5424"]

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "ntp", "security", "console", "solaris-cron", *(f"local{n}" for n in range(8)),
)
"""Facility keywords by number (PRI // 8)."""
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
"""Severity keywords by number (PRI % 8)."""
DEFAULT_PRIORITY = 13
"""RFC 3164 section 4.3.3: a message without a PRI is user.notice."""
HEADER_LIMITS = {"hostname": 255, "appname": 48, "procid": 128, "msgid": 32}
"""RFC 5424 maximum lengths of the header fields (SD-NAMEs are at most 32)."""
SD_NAME_LIMIT = 32
"""RFC 5424 maximum length of an SD-ID or PARAM-NAME."""

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PRI_PATTERN = r"0|1[0-8][0-9]|19[01]|[1-9][0-9]?"
"""PRI: 0 to 191 without leading zeros."""
_TS_5424 = (
    r"-|[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_TS_3164 = (
    rf"(?:{'|'.join(_MONTHS)}) (?: [1-9]|0[1-9]|[12][0-9]|3[01]) (?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
)
SD_NAME_CHAR = r"[\x21\x23-\x3c\x3e-\x5c\x5e-\x7e]"
"""PRINTUSASCII except '=', ']' and '"' (SD-NAME, RFC 5424 section 6.3)."""
SD_VALUE = r'[^"\\\]]*(?:\\[\s\S][^"\\\]]*)*'
"""PARAM-VALUE: '"', '\\' and ']' escaped; a backslash before anything else is kept with it."""
_TAG = r"[^ \t\n\r\f\v\[\]:]+"
_PID = r"[^ \t\n\r\f\v\[\]]+"


def _structured_data(bounded: bool) -> str:
    name = SD_NAME_CHAR + (f"{{1,{SD_NAME_LIMIT}}}" if bounded else "+")
    return rf'-|(?:\[{name}(?: {name}="{SD_VALUE}")*\])+'


def line_pattern(rfc: Literal["rfc3164", "rfc5424"], end: str, bounded: bool) -> str:
    """The regex of a whole line (Python: `end` is `\\Z`) or of everything before MSG (RE2: `end` is `$`).

    Groups: pri, ts, hostname, then appname, procid, msgid, sd, sep (RFC 5424) or sep, tag, pid, tsep
    (RFC 3164); `sep` is " " when a MSG follows. `bounded` spells out the RFC 5424 length limits, which RE2 extracts slowly:
    without it the caller checks the lengths.
    """
    def field(name: str) -> str:
        limit = HEADER_LIMITS[name]
        return f"(?P<{name}>[!-~]" + (f"{{1,{limit}}})" if bounded else "+)")

    if rfc == "rfc5424":
        return (
            rf"^<(?P<pri>{PRI_PATTERN})>1 (?P<ts>{_TS_5424}) {field('hostname')} {field('appname')} {field('procid')} "
            rf"{field('msgid')} (?P<sd>{_structured_data(bounded)})(?P<sep> |{end})"
        )
    return (
        rf"^(?:<(?P<pri>{PRI_PATTERN})>)?(?P<ts>{_TS_3164}) (?P<hostname>[!-~]+)(?P<sep> |{end})"
        rf"(?:(?P<tag>{_TAG})(?:\[(?P<pid>{_PID})\])?:(?P<tsep> |{end}))?"
    )


def quote(text: str, limit: int = 40) -> str:
    """`text` in quotes, cut to `limit` characters with an ellipsis."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _utc_checked(moment: datetime, text: str) -> datetime | ParseFailure:
    try:
        moment.astimezone(timezone.utc)
    except OverflowError:
        return ParseFailure(f"TIMESTAMP {quote(text)} is out of range")
    return moment


_TS_5424_SHAPE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(Z|([+-])([0-9]{2}):([0-9]{2}))"
)


def timestamp_5424(text: str) -> datetime | ParseFailure:
    """An RFC 5424 TIMESTAMP (RFC 3339, at most 6 fraction digits, a real calendar date) with its own offset."""
    shape = _TS_5424_SHAPE.fullmatch(text)
    if shape is None:
        return ParseFailure(f"invalid TIMESTAMP {quote(text)}")
    year, month, day, hour, minute, second, fraction, zone, sign, zone_hour, zone_minute = shape.groups()
    if fraction is not None and len(fraction) > 6:
        return ParseFailure(f"invalid TIMESTAMP {quote(text)}: more than 6 fraction digits")
    if int(hour) > 23 or int(minute) > 59 or int(second) > 59:
        return ParseFailure(f"impossible time {hour}:{minute}:{second}")
    offset = timezone.utc
    if zone != "Z":
        if int(zone_hour) > 23 or int(zone_minute) > 59:
            return ParseFailure(f"impossible UTC offset {zone}")
        delta = timedelta(hours=int(zone_hour), minutes=int(zone_minute))
        offset = timezone(-delta if sign == "-" else delta)
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                          int((fraction or "0").ljust(6, "0")), tzinfo=offset)
    except ValueError:
        return ParseFailure(f"impossible date {year}-{month}-{day}")
    return _utc_checked(moment, text)


def valid_date(text: str) -> bool:
    """Whether `YYYY-MM-DD` is a real date whose instants convert to UTC anywhere (years 2 to 9998)."""
    try:
        return 1 < date.fromisoformat(text).year < 9999
    except ValueError:
        return False


_TS_3164_SHAPE = re.compile(r"([A-Za-z]{3}) ([ 0-9][0-9]) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
_FUTURE_TOLERANCE = timedelta(days=1)


@dataclass(frozen=True)
class TimeRules:
    """How an RFC 3164 TIMESTAMP (`Mmm dd hh:mm:ss`, no year, no zone) becomes an instant.

    Without a fixed `year` the year is the latest one that puts the time at most a day after `reference`
    (now): the closest to now that is not in the future beyond clock skew, so a December line read in
    January belongs to the previous year. Local times that a DST change skips or repeats take the offset
    in force before the change (PEP 495 `fold=0`).
    """

    zone: tzinfo
    year: int | None
    reference: datetime

    def resolve(self, text: str) -> datetime | ParseFailure:
        """The instant of a TIMESTAMP in the zone, or why there is none."""
        shape = _TS_3164_SHAPE.fullmatch(text)
        if shape is None:
            return ParseFailure(f"expected TIMESTAMP 'Mmm dd hh:mm:ss', got {quote(text)}")
        name, day_text, hour, minute, second = shape.groups()
        if name not in _MONTHS:
            return ParseFailure(f"unknown month {name!r} in TIMESTAMP {text!r}")
        if int(hour) > 23 or int(minute) > 59 or int(second) > 59:
            return ParseFailure(f"impossible time {hour}:{minute}:{second}")
        month, day = _MONTHS.index(name) + 1, int(day_text)
        if self.year is not None:
            years = [self.year]
            shown = self.year
        else:
            shown = self.reference.astimezone(self.zone).year
            years = [shown + 1, shown, shown - 1]
        latest = self.reference + _FUTURE_TOLERANCE
        for year in years:
            try:
                moment = datetime(year, month, day, int(hour), int(minute), int(second), tzinfo=self.zone)
            except ValueError:
                continue
            if self.year is None and moment > latest:
                continue
            return _utc_checked(moment, text)
        return ParseFailure(f"impossible date {shown:04d}-{month:02d}-{day:02d}")


StructuredData = dict[str, dict[str, str | list[str]]]
"""SD-ID → {PARAM-NAME: value}; a PARAM-NAME repeated in one element (RFC 5424 allows it) gives a list."""

_SD_ELEMENT = re.compile(rf'\[({SD_NAME_CHAR}+)((?: {SD_NAME_CHAR}+="{SD_VALUE}")*)\]')
_SD_PARAM = re.compile(rf' ({SD_NAME_CHAR}+)="({SD_VALUE})"')
_SD_ESCAPE = re.compile(r'\\(["\\\]])')


def decode_structured_data(text: str) -> StructuredData | ParseFailure:
    """The elements of STRUCTURED-DATA text that matched the grammar, unescaped; a repeated SD-ID fails."""
    elements: StructuredData = {}
    for element in _SD_ELEMENT.finditer(text):
        sd_id = element[1]
        if len(sd_id) > SD_NAME_LIMIT:
            return ParseFailure(f"SD-ID longer than {SD_NAME_LIMIT} characters: {quote(sd_id)}")
        if sd_id in elements:
            return ParseFailure(f"duplicate SD-ID {sd_id!r}")
        params: dict[str, str | list[str]] = {}
        for param in _SD_PARAM.finditer(element[2]):
            name, value = param[1], param[2]
            if len(name) > SD_NAME_LIMIT:
                return ParseFailure(f"PARAM-NAME longer than {SD_NAME_LIMIT} characters: {quote(name)}")
            if "\\" in value:
                value = _SD_ESCAPE.sub(r"\1", value)
            known = params.get(name)
            params[name] = value if known is None else [*known, value] if isinstance(known, list) else [known, value]
        elements[sd_id] = params
    return elements
