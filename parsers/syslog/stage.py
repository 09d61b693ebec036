"""The `syslog` stage: its config, `process` over batches and `parse_lines` for `loglake parse syslog`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from loglake.parsers.columns import lines_of
from loglake.parsers.syslog.columns import COLUMNS, parse_column
from loglake.parsers.syslog.grammar import TimeRules
from loglake.parsers.syslog.lines import as_output, parse_line
from loglake.schemas.config import StageConfig
from loglake.schemas.errors import ConfigError
from loglake.schemas.parsing import ParseFailure, ParseResult
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, split_failures

__all__ = ["SyslogConfig", "SyslogStage", "now"]

log = logging.getLogger(__name__)


def now() -> datetime:
    """The current time (UTC): the reference for RFC 3164 years. Tests replace it."""
    return datetime.now(timezone.utc)


class SyslogConfig(StageConfig):
    """Parse RFC 5424 and RFC 3164 (BSD) syslog lines into the core columns and the syslog fields.

    Example:
        parse: {type: syslog, field: message, format: auto, timezone: Europe/Paris}
    """

    type: Literal["syslog"]
    field: str = "message"
    """Column holding the syslog line; a record where it is null passes through unparsed."""
    format: Literal["auto", "rfc3164", "rfc5424"] = "auto"
    """Which RFC the lines follow; `auto` decides per line (`<PRI>` then a version number means RFC 5424)."""
    year: int | None = Field(default=None, ge=1, le=9999)
    """Year of RFC 3164 timestamps, which have none; unset: the year putting the time closest to now and at most a day ahead (a December line read in January is last year's)."""
    timezone: str = "UTC"
    """IANA time zone of RFC 3164 timestamps, which have no offset (RFC 5424 timestamps carry their own)."""
    target: str | None = None
    """Struct column to write the fields to (replaced if present), leaving the record's own columns alone; unset: they become top-level columns (`timestamp`, `host`, `level`, `message`, …), replacing same-named ones."""


@register_stage(SyslogConfig)
class SyslogStage:
    """Parses syslog lines a batch at a time (RE2 over the column), line by line only where that fails."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: SyslogConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        try:
            self._zone = ZoneInfo(config.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ConfigError(
                f"unknown time zone {config.timezone!r}: use an IANA name such as 'UTC' or 'Europe/Paris'", field="timezone"
            ) from None

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields and the syslog columns (or `target`)."""
        if upstream is None:
            return None
        return upstream | ({self.config.target} if self.config.target else frozenset(COLUMNS))

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types and the syslog columns' (or `target` as their struct)."""
        if self.config.target is not None:
            return {**upstream, self.config.target: pa.struct(_fields())}
        return {**upstream, **COLUMNS}

    def _times(self) -> TimeRules:
        return TimeRules(self._zone, self.config.year, now())

    def parse_lines(self, lines: Sequence[str]) -> list[ParseResult]:
        """One dict per line (keys in RFC order, absent ones left out) or why the line is not syslog."""
        times = self._times()
        results: list[ParseResult] = []
        for line in lines:
            fields = parse_line(line, self.config.format, times)
            results.append(fields if isinstance(fields, ParseFailure) else as_output(fields))
        return results

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with the syslog columns set; lines that are not syslog follow `on_error`."""
        lines = lines_of(batch, self.config.field, self.ctx.node, self.config.on_error)
        if isinstance(lines, StageOutput):
            return lines
        rows = batch.num_rows
        parsed = parse_column(lines, self.config.format, self._times())
        nulls = lines.is_null()
        columns = parsed.columns
        good = batch
        if parsed.failed:
            keep = np.ones(rows, bool)
            keep[parsed.failed] = False
            mask = pa.array(keep)
            good, nulls = batch.filter(mask), nulls.filter(mask)
            columns = {name: column.filter(mask) for name, column in columns.items()}
        good = self._attach(good, columns, nulls)
        if not parsed.failed:
            return StageOutput(main=good)
        log.debug("%s: %d of %d lines are not syslog", self.ctx.node, len(parsed.failed), rows)
        failed = batch.take(pa.array(parsed.failed, pa.int64()))
        return split_failures(good, failed, parsed.errors, self.ctx.node, self.config.on_error)

    def _attach(self, batch: pa.RecordBatch, columns: dict[str, pa.Array], nulls: pa.Array) -> pa.RecordBatch:
        """Write the columns (or one struct of them); a record with a null line keeps its old values."""
        if self.config.target is not None:
            struct = pa.StructArray.from_arrays(list(columns.values()), fields=_fields(), mask=nulls)
            return _set(batch, pa.field(self.config.target, struct.type), struct)
        passing = nulls.true_count > 0
        for name, kind in COLUMNS.items():
            column = columns[name]
            index = batch.schema.get_field_index(name)
            if passing and index >= 0 and batch.schema.field(index).type == kind:
                column = pc.if_else(nulls, batch.column(index), column)
            batch = _set(batch, pa.field(name, kind), column)
        return batch


def _fields() -> list[pa.Field]:
    return [pa.field(name, kind) for name, kind in COLUMNS.items()]


def _set(batch: pa.RecordBatch, field: pa.Field, column: Any) -> pa.RecordBatch:
    index = batch.schema.get_field_index(field.name)
    if index < 0:
        return batch.append_column(field, column)
    return batch.set_column(index, field, column)
