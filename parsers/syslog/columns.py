"""A whole column of syslog lines at once: RE2 over the batch, Python only per distinct value or bad line.

One `extract_regex` per format captures every field but MSG (capturing MSG makes RE2 copy and rescan
it); MSG is then cut out of the original bytes by offset arithmetic in numpy. Timestamps are cast by Arrow
after a per-distinct-date calendar check (RFC 5424) or resolved once per distinct text (RFC 3164);
structured data is decoded once per distinct text. A line the batch path cannot take whole (a syntax
error, a long field, a bad date, duplicate SD-IDs) goes to the per-line parser, which has the last word.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from loglake.parsers.syslog.grammar import (
    DEFAULT_PRIORITY,
    FACILITIES,
    HEADER_LIMITS,
    SEVERITIES,
    Format,
    TimeRules,
    decode_structured_data,
    line_pattern,
    valid_date,
)
from loglake.parsers.syslog.lines import parse_line
from loglake.schemas.parsing import ParseFailure
from loglake.schemas.records import TIMESTAMP_TYPE, normalize_level

__all__ = ["COLUMNS", "ParsedColumns", "parse_column", "structured_data_json"]

COLUMNS: dict[str, pa.DataType] = {
    "timestamp": TIMESTAMP_TYPE,
    "host": pa.string(),
    "level": pa.string(),
    "message": pa.string(),
    "priority": pa.int32(),
    "facility": pa.string(),
    "severity": pa.string(),
    "version": pa.int32(),
    "appname": pa.string(),
    "procid": pa.string(),
    "msgid": pa.string(),
    "structured_data": pa.string(),
}
"""The columns the stage writes, in order, and their types (`structured_data` as JSON text)."""

_RE2_5424 = line_pattern("rfc5424", "$", bounded=False)
_RE2_3164 = line_pattern("rfc3164", "$", bounded=False)
_FACILITY_NAMES = pa.array(FACILITIES, pa.string())
_SEVERITY_NAMES = pa.array(SEVERITIES, pa.string())
_LEVEL_NAMES = pa.array([normalize_level(name) for name in SEVERITIES], pa.string())
_BOM = np.array([0xEF, 0xBB, 0xBF], np.uint8)
_NULL = pa.scalar(None, pa.string())


@dataclass
class ParsedColumns:
    """Every output column at full batch length (null for null lines and failed lines), and the failures."""

    columns: dict[str, pa.Array]
    failed: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class _Format:
    """What one format's regex gave: rows taken whole, their fields, and where each MSG starts."""

    ok: np.ndarray
    pri: np.ndarray
    fields: dict[str, pa.Array]
    msg_start: np.ndarray
    has_msg: np.ndarray


def structured_data_json(elements: Any) -> str:
    """STRUCTURED-DATA as the JSON text the `structured_data` column holds."""
    return orjson.dumps(elements).decode()


def parse_column(lines: pa.Array, rfc: Format, times: TimeRules) -> ParsedColumns:
    """Parse a string array of lines; see the module docstring."""
    count = len(lines)
    offsets = _offsets(lines)
    starts = offsets[:-1].astype(np.int64)
    found = []
    if rfc != "rfc3164":
        found.append(_fast_5424(lines, starts))
    if rfc != "rfc5424":
        found.append(_fast_3164(lines, starts, times))
    ok = np.logical_or.reduce([f.ok for f in found])
    pri = np.choose(found[-1].ok, [found[0].pri, found[-1].pri]) if len(found) > 1 else found[0].pri
    columns: dict[str, pa.Array] = {name: _merge(f.fields[name] for f in found) for name in found[0].fields}
    severity = pa.array(pri & 7, pa.int32(), mask=~ok)
    columns.update(
        priority=pa.array(pri, pa.int32(), mask=~ok),
        facility=_FACILITY_NAMES.take(pa.array(pri >> 3, pa.int32(), mask=~ok)),
        severity=_SEVERITY_NAMES.take(severity),
        level=_LEVEL_NAMES.take(severity),
    )
    msg_start = np.zeros(count, np.int64)
    has_msg = np.zeros(count, bool)
    for part in found:
        np.copyto(msg_start, part.msg_start, where=part.ok)
        has_msg |= part.ok & part.has_msg
    if rfc != "rfc3164":
        _skip_bom(lines, msg_start, has_msg & found[0].ok, offsets[1:])
    columns["message"] = _suffixes(lines, offsets, msg_start, has_msg)
    parsed = ParsedColumns({name: columns[name] for name in COLUMNS})
    slow = np.flatnonzero(~ok & np.asarray(lines.is_valid().to_numpy(zero_copy_only=False)))
    if len(slow):
        _parse_slowly(parsed, lines, slow, rfc, times)
    return parsed


def _offsets(lines: pa.Array) -> np.ndarray:
    return np.frombuffer(lines.buffers()[1], np.int32)[lines.offset: lines.offset + len(lines) + 1]


def _lengths(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False), np.int64)


def _kept(array: pa.Array, keep: np.ndarray) -> pa.Array:
    """`array`, null where `keep` is false."""
    return pc.if_else(pa.array(keep), array, _NULL)


def _merge(parts: Any) -> pa.Array:
    arrays = list(parts)
    return arrays[0] if len(arrays) == 1 else pc.coalesce(*arrays)


def _per_distinct(values: pa.Array, keep: np.ndarray, convert: Callable[[str], Any], kind: pa.DataType) -> pa.Array:
    """`convert` applied once per distinct value of the kept rows (None where it gives a ParseFailure)."""
    encoded = pc.dictionary_encode(pc.if_else(pa.array(keep), values, _NULL))
    results = [convert(text) for text in encoded.dictionary.to_pylist()]
    mapped = pa.array([None if isinstance(r, ParseFailure) else r for r in results], kind)
    return mapped.take(encoded.indices)


def _not_nil(array: pa.Array, ok: np.ndarray) -> np.ndarray:
    """`ok` rows whose value is not the NILVALUE `-`."""
    present: np.ndarray = ok & np.asarray(pc.not_equal(array, "-").to_numpy(zero_copy_only=False), bool)
    return present


def _fast_5424(lines: pa.Array, starts: np.ndarray) -> _Format:
    match = pc.extract_regex(lines, _RE2_5424)
    part = {name: match.field(name) for name in ("pri", "ts", "hostname", "appname", "procid", "msgid", "sd", "sep")}
    length = {name: _lengths(array) for name, array in part.items()}
    ok = np.asarray(match.is_valid().to_numpy(zero_copy_only=False), bool)
    for name, limit in HEADER_LIMITS.items():
        ok &= length[name] <= limit
    timed = _not_nil(part["ts"], ok)
    if timed.any():
        dates = _per_distinct(pc.utf8_slice_codeunits(part["ts"], 0, 10), timed, valid_date, pa.bool_())
        ok &= ~timed | np.asarray(dates.fill_null(False).to_numpy(zero_copy_only=False), bool)
        timed &= ok
    with_sd = _not_nil(part["sd"], ok)
    sd = _per_distinct(part["sd"], with_sd, _sd_json, pa.string())
    ok &= ~with_sd | np.asarray(sd.is_valid().to_numpy(zero_copy_only=False), bool)
    pri = _small_ints(part["pri"], ok)
    prefix = length["pri"] + 4 + sum(length[name] + 1 for name in ("ts", "hostname", "appname", "procid", "msgid"))
    fields = {
        "timestamp": pc.cast(pc.if_else(pa.array(timed & ok), part["ts"], _NULL), TIMESTAMP_TYPE),
        "host": _kept(part["hostname"], _not_nil(part["hostname"], ok)),
        "version": pa.array(np.ones(len(lines), np.int32), mask=~ok),
        "appname": _kept(part["appname"], _not_nil(part["appname"], ok)),
        "procid": _kept(part["procid"], _not_nil(part["procid"], ok)),
        "msgid": _kept(part["msgid"], _not_nil(part["msgid"], ok)),
        "structured_data": _kept(sd, ok),
    }
    return _Format(ok, pri, fields, starts + prefix + length["sd"] + 1, length["sep"] > 0)


def _fast_3164(lines: pa.Array, starts: np.ndarray, times: TimeRules) -> _Format:
    match = pc.extract_regex(lines, _RE2_3164)
    part = {name: match.field(name) for name in ("pri", "ts", "hostname", "sep", "tag", "pid", "tsep")}
    length = {name: _lengths(array) for name, array in part.items()}
    ok = np.asarray(match.is_valid().to_numpy(zero_copy_only=False), bool)
    moments = _per_distinct(part["ts"], ok, times.resolve, TIMESTAMP_TYPE)
    ok &= np.asarray(moments.is_valid().to_numpy(zero_copy_only=False), bool)
    has_pri, tagged, with_pid = length["pri"] > 0, length["tag"] > 0, length["pid"] > 0
    pri = np.where(has_pri, _small_ints(part["pri"], ok & has_pri), DEFAULT_PRIORITY)
    tag_length = np.where(tagged, length["tag"] + np.where(with_pid, length["pid"] + 2, 0) + 1 + length["tsep"], 0)
    prefix = np.where(has_pri, length["pri"] + 2, 0) + 16 + length["hostname"] + length["sep"] + tag_length
    null = pa.nulls(len(lines), pa.string())
    fields = {
        "timestamp": moments,
        "host": _kept(part["hostname"], ok),
        "version": pa.nulls(len(lines), pa.int32()),
        "appname": _kept(part["tag"], ok & tagged),
        "procid": _kept(part["pid"], ok & with_pid),
        "msgid": null,
        "structured_data": null,
    }
    return _Format(ok, pri, fields, starts + prefix, length["sep"] > 0)


def _small_ints(digits: pa.Array, keep: np.ndarray) -> np.ndarray:
    """Decimal text (PRI) as int64, 0 where not kept."""
    text = pc.if_else(pa.array(keep), digits, pa.scalar("0"))
    return np.asarray(pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False), np.int64)


def _sd_json(text: str) -> str | ParseFailure:
    elements = decode_structured_data(text)
    return elements if isinstance(elements, ParseFailure) else structured_data_json(elements)


def _skip_bom(lines: pa.Array, msg_start: np.ndarray, rows: np.ndarray, ends: np.ndarray) -> None:
    """Move the MSG start of `rows` past a UTF-8 BOM (RFC 5424 MSG-UTF8), in place."""
    candidates = np.flatnonzero(rows & (ends - msg_start >= 3))
    if not len(candidates):
        return
    data = np.frombuffer(lines.buffers()[2], np.uint8)
    first = msg_start[candidates]
    hit = (data[first] == _BOM[0]) & (data[first + 1] == _BOM[1]) & (data[first + 2] == _BOM[2])
    msg_start[candidates[hit]] += 3


def _suffixes(lines: pa.Array, offsets: np.ndarray, cut: np.ndarray, present: np.ndarray) -> pa.Array:
    """Each line from byte `cut` to its end (null where not `present`), cut from the original data.

    The offsets of all lines interleaved with the cuts describe the heads and tails of every line over the
    same data buffer; taking every second item copies the tails out.
    """
    count = len(lines)
    bounds = np.empty(2 * count + 1, offsets.dtype)
    bounds[0:-1:2] = offsets[:-1]
    bounds[1::2] = np.where(present, cut, offsets[1:])
    bounds[-1] = offsets[-1]
    data = lines.buffers()[2] or pa.py_buffer(b"")
    halves = pa.Array.from_buffers(pa.string(), 2 * count, [None, pa.py_buffer(bounds), data])
    return halves.take(pa.array(np.arange(1, 2 * count, 2), mask=~present))


def _parse_slowly(parsed: ParsedColumns, lines: pa.Array, rows: np.ndarray, rfc: Format, times: TimeRules) -> None:
    """The per-line parser on the rows the batch path left: failures recorded, successes written in."""
    texts = lines.take(pa.array(rows)).to_pylist()
    good_rows: list[int] = []
    values: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for row, text in zip(rows.tolist(), texts):
        result = parse_line(text, rfc, times)
        if isinstance(result, ParseFailure):
            parsed.failed.append(row)
            parsed.errors.append(result.reason)
            continue
        good_rows.append(row)
        for name, value in _row_values(result).items():
            values[name].append(value)
    if not good_rows:
        return
    mask = np.zeros(len(lines), bool)
    mask[good_rows] = True
    for name, kind in COLUMNS.items():
        parsed.columns[name] = pc.replace_with_mask(parsed.columns[name], pa.array(mask), pa.array(values[name], kind))


def _row_values(fields: dict[str, Any]) -> dict[str, Any]:
    """A per-line result as one value per output column."""
    elements = fields.get("structured_data")
    return {
        "timestamp": fields.get("timestamp"),
        "host": fields.get("hostname"),
        "level": normalize_level(fields["severity"]),
        "message": fields.get("message"),
        "priority": fields["priority"],
        "facility": fields["facility"],
        "severity": fields["severity"],
        "version": fields.get("version"),
        "appname": fields.get("appname"),
        "procid": fields.get("procid"),
        "msgid": fields.get("msgid"),
        "structured_data": None if elements is None else structured_data_json(elements),
    }
