"""The `timestamp` stage: parse a field into the event time (UTC, microseconds) with a list of formats."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from loglake.schemas.config import StageConfig
from loglake.schemas.errors import ConfigError
from loglake.schemas.records import TIMESTAMP_TYPE
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, split_failures

__all__ = ["NAMED_FORMATS", "TimestampConfig", "TimestampStage", "TimestampParser"]

NAMED_FORMATS = ("ISO8601", "UNIX", "UNIX_MS", "UNIX_US", "UNIX_NS", "APACHE", "SYSLOG")
"""Format names understood besides strptime patterns."""

_UNIX_SCALE = {"UNIX": 1_000_000, "UNIX_MS": 1_000, "UNIX_US": 1, "UNIX_NS": -1_000}
"""Microseconds per unit; negative: divide by the absolute value."""
_STRPTIME_ALIASES = {"APACHE": "%d/%b/%Y:%H:%M:%S %z", "SYSLOG": "%Y %b %d %H:%M:%S"}
_INTEGER = r"^\s*-?[0-9]+\s*$"
_DECIMAL = r"^\s*-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\s*$"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_QUOTE_LIMIT = 80


class TimestampConfig(StageConfig):
    """Parse a field into the event-time column with the first of several formats that matches.

    Example:
        when: {type: timestamp, field: timestamp, formats: [APACHE, ISO8601]}
    """

    type: Literal["timestamp"]
    field: str
    """Column holding the time as text, epoch numbers or a timestamp."""
    formats: list[str] = Field(min_length=1)
    """Tried in order per value: strptime patterns or ISO8601, UNIX, UNIX_MS, UNIX_US, UNIX_NS, APACHE, SYSLOG (no year: the current one)."""
    timezone: str = "UTC"
    """IANA zone for values that carry no offset (`Europe/Paris`)."""
    target: str = "timestamp"
    """Column to write as timestamp[us, UTC]; replaced if present."""


def _quote(value: str) -> str:
    return repr(value if len(value) <= _QUOTE_LIMIT else value[: _QUOTE_LIMIT - 1] + "…")


class TimestampParser:
    """Parses columns with a list of formats: vectorised per format, then once per distinct leftover value."""

    def __init__(self, formats: list[str], zone: str, field: str = "formats") -> None:
        for index, fmt in enumerate(formats):
            if fmt not in NAMED_FORMATS and "%" not in fmt:
                raise ConfigError(f"unknown format '{fmt}'; use a strptime pattern or one of {', '.join(NAMED_FORMATS)}", field=f"{field}.{index}")
        try:
            self.zone = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone '{zone}'", field="timezone") from None
        self.zone_name = zone
        self.formats = list(formats)

    def parse(self, column: pa.Array) -> tuple[pa.Array, pa.Array]:
        """The column as timestamp[us, UTC] and a mask of the non-null values no format matched."""
        kind = column.type
        if pa.types.is_dictionary(kind):
            column, kind = column.dictionary_decode(), kind.value_type
        if pa.types.is_timestamp(kind):
            naive = column if kind.tz is None else None
            values = self._localised(naive) if naive is not None else column.cast(TIMESTAMP_TYPE)
            return values, pa.array(np.zeros(len(column), dtype=bool))
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            unix = next((fmt for fmt in self.formats if fmt in _UNIX_SCALE), None)
            if unix is not None:
                return self._from_epoch(column, unix), pa.array(np.zeros(len(column), dtype=bool))
        text = column if pa.types.is_string(kind) else column.cast(pa.string())
        result = pa.nulls(len(text), TIMESTAMP_TYPE)
        todo = pc.is_valid(text)
        for fmt in self.formats:
            if not pc.any(todo).as_py():
                break
            parsed = self._vectorised(text, fmt)
            if parsed is None:
                continue
            hit = pc.and_(todo, pc.is_valid(parsed))
            result = pc.if_else(hit, parsed, result)
            todo = pc.and_not(todo, hit)
        if pc.any(todo).as_py():
            result, todo = self._per_distinct(text, todo, result)
        return result, todo

    def _localised(self, naive: pa.Array) -> pa.Array:
        """Naive wall-clock times in the configured zone → UTC µs (ambiguous/nonexistent: earliest)."""
        local = pc.assume_timezone(naive.cast(pa.timestamp("us")), self.zone_name, ambiguous="earliest", nonexistent="earliest")
        return local.cast(TIMESTAMP_TYPE)

    @staticmethod
    def _from_epoch(numbers: pa.Array, unix: str) -> pa.Array:
        scale = _UNIX_SCALE[unix]
        if pa.types.is_floating(numbers.type):
            micros = pc.round(pc.multiply(numbers, float(scale) if scale > 0 else 1.0 / -scale))
        else:
            numbers = numbers.cast(pa.int64())
            micros = pc.multiply(numbers, scale) if scale > 0 else pc.divide(numbers, -scale)
        return micros.cast(pa.int64()).cast(pa.timestamp("us")).cast(TIMESTAMP_TYPE)

    def _vectorised(self, text: pa.Array, fmt: str) -> pa.Array | None:
        """Values parsed with `fmt` over the whole column (null where it does not match), or None if none can be."""
        if fmt in _UNIX_SCALE:
            integer = pc.match_substring_regex(text, _INTEGER)
            decimal = pc.match_substring_regex(text, _DECIMAL)
            ints = pc.if_else(integer, text, pa.scalar(None, pa.string())).cast(pa.int64())
            floats = pc.if_else(pc.and_not(decimal, integer), text, pa.scalar(None, pa.string())).cast(pa.float64())
            return pc.coalesce(self._from_epoch(ints, fmt), self._from_epoch(floats, fmt))
        if fmt == "ISO8601":
            return None  # several shapes with and without offsets: parsed once per distinct value
        pattern = _STRPTIME_ALIASES.get(fmt, fmt)
        if fmt == "SYSLOG":
            year = str(datetime.now(self.zone).year)
            text = pc.binary_join_element_wise(pa.scalar(year), text, " ")
        parsed = pc.strptime(text, pattern, unit="us", error_is_null=True)
        if parsed.type.tz is not None:  # %z: the offset was applied
            return parsed.cast(TIMESTAMP_TYPE)
        # Arrow's strptime rolls invalid dates over (Feb 30 → Mar 2): keep only what formats back to the text.
        exact = pc.equal(pc.strftime(parsed, pattern), text)
        return self._localised(pc.if_else(pc.fill_null(exact, False), parsed, pa.scalar(None, parsed.type)))

    def _per_distinct(self, text: pa.Array, todo: pa.Array, result: pa.Array) -> tuple[pa.Array, pa.Array]:
        """The values still unmatched, parsed once per distinct value with Python, in format order."""
        pending = text.filter(todo)
        encoded = pc.dictionary_encode(pending)
        year = datetime.now(self.zone).year
        parsers = [self._python_parser(fmt, year) for fmt in self.formats]
        parsed: list[datetime | None] = []
        for value in encoded.dictionary.to_pylist():
            parsed.append(next((hit for hit in (parse(value) for parse in parsers) if hit is not None), None))
        found = pa.array(parsed, TIMESTAMP_TYPE).take(encoded.indices)
        result = pc.replace_with_mask(result, todo, found)
        return result, pc.and_(todo, pc.is_null(result))

    def _python_parser(self, fmt: str, year: int) -> Callable[[str], datetime | None]:
        def aware(moment: datetime) -> datetime:
            return (moment.replace(tzinfo=self.zone) if moment.tzinfo is None else moment).astimezone(timezone.utc)

        if fmt in _UNIX_SCALE:
            scale = _UNIX_SCALE[fmt]

            def unix(value: str) -> datetime | None:
                try:
                    number = float(value)
                    return _EPOCH + timedelta(microseconds=round(number * scale if scale > 0 else number / -scale))
                except (ValueError, OverflowError):
                    return None

            return unix
        if fmt == "ISO8601":

            def iso(value: str) -> datetime | None:
                try:
                    return aware(datetime.fromisoformat(value.strip()))
                except ValueError:
                    return None

            return iso
        pattern = _STRPTIME_ALIASES.get(fmt, fmt)
        prefix = f"{year} " if fmt == "SYSLOG" else ""

        def strptime(value: str) -> datetime | None:
            try:
                return aware(datetime.strptime(prefix + value, pattern))
            except (ValueError, OverflowError):
                return None

        return strptime


@register_stage(TimestampConfig)
class TimestampStage:
    """Sets `target` from `field`; a non-null value that matches no format fails its record per `on_error`.

    A missing field or a null value leaves the event time null (the sink fills ingest time later).
    """

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: TimestampConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        self._parser = TimestampParser(config.formats, config.timezone)
        self._names = ", ".join(config.formats)

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields and `target`."""
        return None if upstream is None else upstream | {self.config.target}

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types, `target` a UTC timestamp."""
        return {**upstream, self.config.target: TIMESTAMP_TYPE}

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with `target` parsed; unparseable records follow `on_error`."""
        index = batch.schema.get_field_index(self.config.field)
        if index < 0:
            return StageOutput(main=batch)
        values, failed = self._parser.parse(batch.column(index))
        target = batch.schema.get_field_index(self.config.target)
        out = batch.append_column(self.config.target, values) if target < 0 else batch.set_column(target, self.config.target, values)
        if not pc.any(failed).as_py():
            return StageOutput(main=out)
        raw = batch.column(index).filter(failed).cast(pa.string()).to_pylist()
        errors = [f"{self.config.field}: {_quote(value)} matches none of the formats {self._names}" for value in raw]
        return split_failures(out.filter(pc.invert(failed)), batch.filter(failed), errors, self.ctx.node, self.config.on_error)
