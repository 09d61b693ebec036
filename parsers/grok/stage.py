"""The `grok` stage, and the batch machinery every capture stage (grok, regex, the presets) shares.

A batch's text column is dictionary-encoded, each distinct line is matched once, and the captures come
back as columns that are spread over the rows with one `take`. `parse_lines` runs the very same code on
a list of lines and reads the rows back out, so the CLI prints what a pipeline would store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from loglake.parsers.columns import ParsedRows, finish, lines_of, quote_line
from loglake.parsers.grok.compiler import Kind, capture_syntax, compile_pattern, expand_grok
from loglake.parsers.grok.library import load_library
from loglake.parsers.grok.speedups import backslash_free_library, faster_library
from loglake.parsers.grok.matcher import Matcher, Parsed
from loglake.schemas.config import StageConfig
from loglake.schemas.errors import ConfigError
from loglake.schemas.parsing import ParseFailure, ParseResult
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput

__all__ = ["CaptureConfig", "CaptureStage", "GrokConfig", "GrokStage", "grok_matcher"]

log = logging.getLogger(__name__)

_PATTERN_NAME = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"


class CaptureConfig(StageConfig):
    """Options every stage that captures fields from a text column shares (grok, regex, the presets)."""

    field: str = "message"
    """Column holding the text to match; a record where it is null passes through with no captures."""
    target: str | None = None
    """Struct column to write the captures to (replaced if present); unset: each capture becomes a top-level column, replacing a same-named one (a record where the capture is empty keeps the old value if the types match)."""


class GrokConfig(CaptureConfig):
    """Capture fields from text with grok patterns (Logstash semantics, pygrok's pattern library).

    Example:
        parse: {type: grok, field: message, patterns: ["%{COMBINEDAPACHELOG}"]}
    """

    type: Literal["grok"]
    patterns: list[str] = Field(min_length=1)
    """Grok patterns tried in order; the first that matches a line wins (unanchored unless the pattern anchors itself)."""
    pattern_definitions: dict[str, str] = {}
    """Extra named patterns, `NAME: regex`, usable as `%{NAME}`; they replace library patterns of the same name."""
    pattern_dirs: list[str] = []
    """Folders of pattern files (`NAME regex` per line), relative to the pipeline file; later folders win."""
    tag_on_failure: str = "_grokparsefailure"
    """Prefix of the `_error` of a line no pattern matches (Logstash's failure tag)."""


def grok_matcher(patterns: Sequence[str], library: Mapping[str, str], kinds: Mapping[str, Kind] | None = None) -> Matcher:
    """Grok patterns expanded against `library` and compiled once, `kinds` converting captures by name.

    Raises:
        ConfigError: with `field` `patterns.<index>`, naming the pattern and what is wrong with it.
    """
    found: dict[str, Kind] = dict(kinds or {})
    faster, backslash_free = faster_library(library), backslash_free_library(library)
    compiled = []
    for index, pattern in enumerate(patterns):
        try:
            text = expand_grok(pattern, faster, found)
            twin = expand_grok(pattern, backslash_free, dict(found))
            compiled.append(compile_pattern(pattern, text, twin if twin != text else None))
        except ConfigError as exc:
            raise ConfigError(f"grok pattern {pattern!r}: {exc.message}", field=f"patterns.{index}") from None
    try:
        return Matcher(compiled, found)
    except ConfigError as exc:
        raise ConfigError(exc.message, field="patterns") from None


def _distinct(lines: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """Distinct non-null lines and the index of each row's line (None: the lines are the rows, in order)."""
    encoded = pc.dictionary_encode(lines)
    if encoded.null_count == 0 and len(encoded.dictionary) == len(lines):
        return encoded.dictionary, None
    return encoded.dictionary, encoded.indices


def _plain(value: Any) -> Any:
    """A value as `parse_lines` gives it: no null fields or empty objects, times as ISO 8601 text."""
    if isinstance(value, dict):
        kept = {key: _plain(item) for key, item in value.items()}
        kept = {key: item for key, item in kept.items() if item is not None}
        return kept or None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class CaptureStage:
    """Matches a text column and adds the captures; the base of the grok, regex and preset stages."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)
    top_level: ClassVar[frozenset[str]] = frozenset()
    """Captures that stay top-level columns even with `target` (the presets' event time and level)."""
    captures_what: str = "the pattern"
    """What captures, as notes about text fields name it (`grok`, `regex`, a preset's type)."""

    def __init__(self, config: CaptureConfig, ctx: NodeContext, matcher: Matcher, tag: str, miss: str) -> None:
        self.config = config
        self.ctx = ctx
        self.matcher = matcher
        self._prefix = f"{tag}: " if tag else ""
        self._miss = miss

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields and the captures' top-level names (`target` instead, beside the `top_level` ones)."""
        if upstream is None:
            return None
        names = frozenset(capture.path[0] for capture in self.matcher.captures)
        target = self.config.target
        return upstream | (names if target is None else {target} | (names & self.top_level))

    def capture_types(self) -> dict[str, pa.DataType]:
        """The type of each top-level capture column, before `target` (presets: the event time's)."""
        return self.matcher.types()

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types and the captures' (text unless converted), or `target` as their struct beside the `top_level` ones."""
        captured = self.capture_types()
        target = self.config.target
        if target is None:
            return {**upstream, **captured}
        inner = [(name, kind) for name, kind in captured.items() if name not in self.top_level]
        outer = {name: kind for name, kind in captured.items() if name in self.top_level}
        return {**upstream, **outer, **({target: pa.struct(inner)} if inner else {})}

    def type_note(self, field: str) -> tuple[str, str | None] | None:
        """Why a top-level text capture is text, and how else to get a number, if the stage knows."""
        if self.config.target is not None or not pa.types.is_string(self.capture_types().get(field, pa.null())):
            return None
        return f"{self.captures_what} captures text", self._typed_capture(field)

    def _typed_capture(self, field: str) -> str | None:
        """How to capture `field` as a number in this stage's configuration, if there is a way."""
        return None

    def _finish(self, parsed: Parsed) -> Parsed:
        """Post-process the captures of distinct lines (presets: event time, level); may add problems."""
        return parsed

    def _captures(self, column: pa.Array) -> tuple[list[tuple[str, pa.Array]], pa.Array | None]:
        """Top-level capture columns for a string column, and each row's error (None: no row failed)."""
        lines, indices = _distinct(column)
        parsed = self._finish(self.matcher.parse(lines))
        fields, errors = parsed.fields, None
        if parsed.missed or parsed.problems:
            values: list[str | None] = [None] * len(lines)
            for index in parsed.missed:
                values[index] = f"{self._prefix}{self._miss}: {quote_line(lines[index].as_py())}"
            for index, problem in parsed.problems.items():
                values[index] = f"{self._prefix}{problem}"
            errors = pa.array(values, pa.string())
        if indices is not None:
            fields = [(name, array.take(indices)) for name, array in fields]
            errors = errors.take(indices) if errors is not None else None
        return fields, errors

    def _layout(self, fields: list[tuple[str, pa.Array]], lines: pa.Array) -> list[tuple[str, pa.Array]]:
        """The columns to set: the captures, or `target` as one struct (null where the line is) beside `top_level` ones."""
        target = self.config.target
        if target is None:
            return fields
        inner = [(name, array) for name, array in fields if name not in self.top_level]
        outer = [(name, array) for name, array in fields if name in self.top_level]
        if inner:
            struct = pa.StructArray.from_arrays([a for _, a in inner], names=[n for n, _ in inner], mask=pc.is_null(lines))
            outer.append((target, struct))
        return outer

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with the captures added; lines no pattern matches follow `on_error`."""
        lines = lines_of(batch, self.config.field, self.ctx.node, self.config.on_error)
        if isinstance(lines, StageOutput):
            return lines
        fields, errors = self._captures(lines)
        parsed, kept = ParsedRows(), lines
        if errors is not None:
            ok = pc.is_null(errors)
            fields, kept = [(name, array.filter(ok)) for name, array in fields], lines.filter(ok)
            parsed.failed, parsed.errors = pc.indices_nonzero(pc.invert(ok)).to_pylist(), errors.drop_null().to_pylist()
            log.debug("%s: %d of %d lines did not parse", self.ctx.node, len(parsed.failed), batch.num_rows)
        target = self.config.target
        if target is not None and any(name in self.top_level for name, _ in fields):
            fields, target = self._layout(fields, kept), None  # the struct is built here, beside the top-level columns
        parsed.names, parsed.columns = [name for name, _ in fields], [array for _, array in fields]
        return finish(batch, lines, parsed, target, self.ctx.node, self.config.on_error)

    def parse_lines(self, lines: Sequence[str]) -> list[ParseResult]:
        """Each line's captures as a dict (nested names as dicts, empty ones left out), or why it failed."""
        if not lines:
            return []
        try:
            column = pa.array(list(lines), pa.string())
        except UnicodeEncodeError:  # lone surrogates, which no UTF-8 column can hold, are read as "?"
            column = pa.array([line.encode("utf-8", "replace").decode("utf-8") for line in lines], pa.string())
        fields, errors = self._captures(column)
        columns = [(name, array.to_pylist()) for name, array in self._layout(fields, column)]
        reasons = errors.to_pylist() if errors is not None else [None] * len(lines)
        results: list[ParseResult] = []
        for row, reason in enumerate(reasons):
            if reason is not None:
                results.append(ParseFailure(reason))
                continue
            record = {name: _plain(values[row]) for name, values in columns}
            results.append({name: value for name, value in record.items() if value is not None})
        return results


@register_stage(GrokConfig)
class GrokStage(CaptureStage):
    """Grok patterns compiled once into one regex each; lines matched once per distinct value per batch."""

    captures_what = "grok"

    def __init__(self, config: GrokConfig, ctx: NodeContext) -> None:
        for name in config.pattern_definitions:
            if not name or name.strip(_PATTERN_NAME):
                raise ConfigError(f"pattern name '{name}' may hold only letters, digits and _", field=f"pattern_definitions.{name}")
        library = load_library([ctx.resolve(folder) for folder in config.pattern_dirs], config.pattern_definitions)
        super().__init__(config, ctx, grok_matcher(config.patterns, library), config.tag_on_failure, "no pattern matched")
        self._patterns = tuple(config.patterns)
        self._library = library

    def _typed_capture(self, field: str) -> str | None:
        """`capture it as %{NUMBER:field:int}`, with the pattern name that captures it (in the patterns or the library)."""
        syntax = capture_syntax(field, self._patterns, self._library)
        return None if syntax is None else f"capture it as %{{{syntax}:{field}:int}}"
