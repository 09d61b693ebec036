"""Presets: grok configured for web-server logs, with typed fields and the event time set.

`apache_combined`, `apache_common` and `nginx_access` read access logs (nginx's default formats are
Apache's, fields named as Logstash's COMBINEDAPACHELOG names them: `response` is nginx's `$status`,
`bytes` its `$body_bytes_sent`); `apache_error` and `nginx_error` read error logs and set `level`.
Each sets the core `timestamp` column (UTC) from the line's own time, which stays a top-level column even
with `target`, as does `level`. Quoted fields (`referrer`, `agent`) come without their quotes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc

from loglake.parsers.grok.compiler import Kind
from loglake.parsers.grok.library import load_library
from loglake.parsers.grok.matcher import Matcher, Parsed
from loglake.parsers.grok.stage import CaptureConfig, CaptureStage, grok_matcher
from loglake.schemas.config import type_name_of
from loglake.schemas.errors import ConfigError
from loglake.schemas.records import TIMESTAMP_TYPE, normalize_level
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext

__all__ = [
    "PresetConfig",
    "ZonelessPresetConfig",
    "PresetStage",
    "ApacheCombinedConfig",
    "ApacheCommonConfig",
    "ApacheErrorConfig",
    "NginxAccessConfig",
    "NginxErrorConfig",
]

_MONTHS = {
    name: number
    for number, full in enumerate(
        ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"), start=1
    )
    for name in (full, full[:3])
}
_HTTPDATE = re.compile(r"(\d{1,2})/([A-Za-z]+)/(\d{4}):(\d{1,2}):(\d\d):(\d\d)(?:[.,](\d+))? ([+-])(\d\d):?(\d\d)", re.ASCII)
_HTTPD_ERROR_DATE = re.compile(r"[A-Za-z]+ ([A-Za-z]+) +(\d{1,2}) (\d{1,2}):(\d\d):(\d\d)(?:[.,](\d+))? (\d{4})", re.ASCII)
_NGINX_ERROR_DATE = re.compile(r"(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)", re.ASCII)

_DEFINITIONS = {
    "LOGLAKE_QUOTED": r'(?>[^"\\]+|\\.)*',
    "LOGLAKE_COMBINED": '%{COMMONAPACHELOG} "%{LOGLAKE_QUOTED:referrer}" "%{LOGLAKE_QUOTED:agent}"',
    "LOGLAKE_HTTPD24_ERROR": (
        r"\[%{HTTPDERROR_DATE:timestamp}\] \[(?:%{WORD:module}:)?%{LOGLEVEL:level}[1-8]?\] "
        r"\[pid %{POSINT:pid}(?::tid %{INT:tid})?\](?: \(%{POSINT:os_errorcode}\)%{DATA:os_errormessage}:)?"
        r"(?: \[client %{IPORHOST:clientip}(?::%{POSINT:clientport})?\])? (?:(?<errorcode>AH[0-9]{5}): )?%{GREEDYDATA:errormsg}"
    ),
    "LOGLAKE_HTTPD20_ERROR": r"\[%{HTTPDERROR_DATE:timestamp}\] \[%{LOGLEVEL:level}\] (?:\[client %{IPORHOST:clientip}\] )?%{GREEDYDATA:errormsg}",
    "LOGLAKE_NGINX_ERROR": (
        r"(?<timestamp>%{YEAR}/%{MONTHNUM2}/%{MONTHDAY} %{TIME}) \[%{LOGLEVEL:level}\] %{POSINT:pid}#%{NONNEGINT:tid}: "
        r"(?:\*%{NONNEGINT:connection} )?%{DATA:errormsg}(?:, client: %{IPORHOST:clientip})?(?:, server: %{DATA:server})?"
        r'(?:, request: "%{DATA:request}")?(?:, upstream: "%{DATA:upstream}")?(?:, host: "%{DATA:http_host}")?'
        r'(?:, referrer: "%{DATA:referrer}")?$'
    ),
}
"""The presets' patterns, on top of pygrok's library (`LOGLAKE_` names, so no library pattern is replaced)."""


def _moment(year: int, month: int | None, day: int, clock: tuple[str, str, str], fraction: str | None, zone: tzinfo) -> datetime | None:
    """A UTC time from its parts, or None for a date that does not exist (31 February, month 13)."""
    if month is None:
        return None
    hour, minute, second = (int(part) for part in clock)
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime(year, month, day, hour, minute, second, micros, tzinfo=zone).astimezone(timezone.utc)
    except ValueError:
        return None


def _httpdate(text: str, zone: tzinfo) -> datetime | None:
    """`17/May/2015:10:05:03 +0000` (the zone in the text wins)."""
    found = _HTTPDATE.fullmatch(text)
    if found is None:
        return None
    day, month, year, hour, minute, second, fraction, sign, zone_hours, zone_minutes = found.groups()
    offset = timedelta(hours=int(zone_hours), minutes=int(zone_minutes))
    if offset >= timedelta(days=1):
        return None
    written = timezone(-offset if sign == "-" else offset)
    return _moment(int(year), _MONTHS.get(month.lower()), int(day), (hour, minute, second), fraction, written)


def _httpd_error_date(text: str, zone: tzinfo) -> datetime | None:
    """`Wed Oct 11 14:32:52.123456 2000`, local time in `zone`."""
    found = _HTTPD_ERROR_DATE.fullmatch(text)
    if found is None:
        return None
    month, day, hour, minute, second, fraction, year = found.groups()
    return _moment(int(year), _MONTHS.get(month.lower()), int(day), (hour, minute, second), fraction, zone)


def _nginx_error_date(text: str, zone: tzinfo) -> datetime | None:
    """`2024/01/02 03:04:05`, local time in `zone`."""
    found = _NGINX_ERROR_DATE.fullmatch(text)
    if found is None:
        return None
    year, month, day, hour, minute, second = found.groups()
    return _moment(int(year), int(month), int(day), (hour, minute, second), None, zone)


@dataclass(frozen=True)
class _Preset:
    """What a preset matches and how it reads its time."""

    patterns: tuple[str, ...]
    kinds: Mapping[str, Kind]
    read_time: Callable[[str, tzinfo], datetime | None]
    time_format: str
    """How the time is written, for error messages."""


_ACCESS_KINDS: Mapping[str, Kind] = {"response": "int", "bytes": "int"}
_PRESETS = {
    "apache_combined": _Preset(("%{LOGLAKE_COMBINED}",), _ACCESS_KINDS, _httpdate, "%d/%b/%Y:%H:%M:%S %z"),
    "apache_common": _Preset(("%{COMMONAPACHELOG}",), _ACCESS_KINDS, _httpdate, "%d/%b/%Y:%H:%M:%S %z"),
    "nginx_access": _Preset(
        ('%{LOGLAKE_COMBINED}(?: "%{LOGLAKE_QUOTED:x_forwarded_for}")?',), _ACCESS_KINDS, _httpdate, "%d/%b/%Y:%H:%M:%S %z"
    ),
    "apache_error": _Preset(
        ("%{LOGLAKE_HTTPD24_ERROR}", "%{LOGLAKE_HTTPD20_ERROR}"),
        {"pid": "int", "tid": "int", "clientport": "int", "os_errorcode": "int"},
        _httpd_error_date,
        "%a %b %d %H:%M:%S[.%f] %Y",
    ),
    "nginx_error": _Preset(
        ("%{LOGLAKE_NGINX_ERROR}",), {"pid": "int", "tid": "int", "connection": "int"}, _nginx_error_date, "%Y/%m/%d %H:%M:%S"
    ),
}


@lru_cache(maxsize=None)
def _matcher(name: str) -> Matcher:
    """A preset's patterns, compiled once per process (a Matcher is immutable and shared by all its stages)."""
    preset = _PRESETS[name]
    return grok_matcher(preset.patterns, load_library(definitions=_DEFINITIONS), preset.kinds)


class PresetConfig(CaptureConfig):
    """Options every preset has: `field`, `target`, `inputs`, `on_error`."""


class ZonelessPresetConfig(PresetConfig):
    """Options of the presets for logs whose times carry no zone."""

    timezone: str = "UTC"
    """Time zone the log's times are written in (an IANA name such as Europe/Berlin); they carry none."""


class ApacheCombinedConfig(PresetConfig):
    """Apache's combined access log: clientip, ident, auth, timestamp, verb, request, httpversion, response, bytes, referrer, agent.

    Example:
        access: {type: apache_combined, field: message}
    """

    type: Literal["apache_combined"]


class ApacheCommonConfig(PresetConfig):
    """Apache's common access log: clientip, ident, auth, timestamp, verb, request, httpversion, response, bytes.

    Example:
        access: {type: apache_common, field: message}
    """

    type: Literal["apache_common"]


class NginxAccessConfig(PresetConfig):
    """nginx's access log (`combined`, or `main` with `x_forwarded_for`); fields as `apache_combined`.

    Example:
        access: {type: nginx_access, field: message, target: http}
    """

    type: Literal["nginx_access"]


class ApacheErrorConfig(ZonelessPresetConfig):
    """Apache's error log (2.4, and 2.2/2.0): timestamp, level, module, pid, tid, clientip, clientport, errorcode, errormsg.

    Example:
        errors: {type: apache_error, field: message, timezone: Europe/Berlin}
    """

    type: Literal["apache_error"]


class NginxErrorConfig(ZonelessPresetConfig):
    """nginx's error log: timestamp, level, pid, tid, connection, errormsg, clientip, server, request, upstream, http_host, referrer.

    Example:
        errors: {type: nginx_error, field: message}
    """

    type: Literal["nginx_error"]


class PresetStage(CaptureStage):
    """Every preset (the config's `type` names which): its grok patterns, the time read into `timestamp`, the level normalised."""

    top_level: ClassVar[frozenset[str]] = frozenset({"timestamp", "level"})

    def __init__(self, config: PresetConfig, ctx: NodeContext) -> None:
        self.preset = type_name_of(type(config))
        name = getattr(config, "timezone", "UTC")
        try:
            self._zone: tzinfo = timezone.utc if name == "UTC" else ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone '{name}' (use an IANA name such as Europe/Berlin or UTC)", field="timezone") from None
        super().__init__(config, ctx, _matcher(self.preset), "_grokparsefailure", "no pattern matched")
        self.captures_what = self.preset

    def capture_types(self) -> dict[str, pa.DataType]:
        """The captures' types, `timestamp` the event time (UTC) read from the line's own."""
        types = self.matcher.types()
        return {**types, "timestamp": TIMESTAMP_TYPE} if "timestamp" in types else types

    def _finish(self, parsed: Parsed) -> Parsed:
        """`timestamp` text → UTC event time (a line whose time does not read fails); `level` normalised."""
        fields = []
        for name, column in parsed.fields:
            if name == "timestamp":
                column = self._times(column, parsed.problems)
            elif name == "level":
                encoded = pc.dictionary_encode(column)
                column = pa.array([normalize_level(v) for v in encoded.dictionary.to_pylist()], pa.string()).take(encoded.indices)
            fields.append((name, column))
        parsed.fields = fields
        return parsed

    def _times(self, column: pa.Array, problems: dict[int, str]) -> pa.Array:
        preset = _PRESETS[self.preset]
        encoded = pc.dictionary_encode(column)
        texts = encoded.dictionary.to_pylist()
        times = pa.array([preset.read_time(text, self._zone) for text in texts], TIMESTAMP_TYPE).take(encoded.indices)
        failed = pc.and_(pc.is_null(times), pc.is_valid(column))
        if pc.any(failed).as_py():
            for index in pc.indices_nonzero(failed).to_pylist():
                problems.setdefault(index, f"timestamp {column[index].as_py()!r} is not a valid {preset.time_format} time")
        return times


for _config in (ApacheCombinedConfig, ApacheCommonConfig, NginxAccessConfig, ApacheErrorConfig, NginxErrorConfig):
    register_stage(_config)(PresetStage)
