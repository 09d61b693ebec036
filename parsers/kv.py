"""The `kv` stage: `key=value` pairs (logfmt, firewall and syslog key=value lines) into text columns.

Semantics follow Logstash's kv filter: `field_split` and `value_split` are sets of single characters; a key
starts a token and runs to the first value-split character; a value is `"double"` or `'single'` quoted
(quotes removed, spaces kept, `\\"`, `\\'` and `\\\\` unescaped) or runs to the next field-split character
(and may contain value-split characters: `url=/a?b=c`). Text between pairs that is not a pair is skipped.
Where this stage decides otherwise:

- a repeated key keeps its first value (Logstash makes an array): values stay text, columns keep one type,
  and a message that quotes another kv line at its end cannot overwrite the record's own fields;
- an empty value (`key=`, `key=""`) is kept as an empty string;
- a quote that opens a value and does not close it before the next separator fails the line, rather than
  leaving a stray quote in the value;
- no spaces around `value_split` (Logstash's `whitespace => strict`): in `a = b` nothing is a pair;
- a line with no pairs at all fails; one whose pairs `include_keys`/`exclude_keys` all filter out does not.

Each distinct line of a batch is parsed once (`parse_lines` runs the same per-line code).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, ValidationInfo, field_validator

from loglake.parsers.columns import ParsedRows, finish, lines_of, quote_line
from loglake.schemas.config import StageConfig
from loglake.schemas.parsing import ParseFailure, ParseResult
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput

__all__ = ["KvConfig", "KvStage"]

log = logging.getLogger(__name__)

_QUOTES = "\"'"
_UNESCAPE = re.compile(r"\\([\"'\\])")


class KvConfig(StageConfig):
    """Split `key=value` pairs into columns, Logstash kv style (a repeated key keeps its first value).

    Example:
        parse: {type: kv, field: message, include_keys: [devname, srcip, dstip, action]}
    """

    type: Literal["kv"]
    field: str = "message"
    """Column holding the text; a record where it is null passes through unparsed."""
    field_split: str = Field(default=" ", min_length=1)
    """Characters that separate pairs, each one on its own (`" &"`: a space or an ampersand)."""
    value_split: str = Field(default="=", min_length=1)
    """Characters that separate a key from its value, each one on its own."""
    prefix: str = ""
    """Added in front of every key to name its column (`prefix: kv_` makes `kv_srcip`)."""
    include_keys: list[str] = Field(default_factory=list)
    """Keep only these keys (as written in the line, before `prefix`); empty: keep every key. Each always becomes a column."""
    exclude_keys: list[str] = Field(default_factory=list)
    """Drop these keys (as written in the line, before `prefix`); must not name a key `include_keys` names."""
    target: str | None = None
    """Struct column to write the pairs to (replaced if present); unset: each key becomes a top-level column, replacing a same-named one (a record without the key keeps the old value)."""
    trim_key: str = ""
    """Characters stripped from both ends of each key (before `include_keys`, `exclude_keys` and `prefix`)."""
    trim_value: str = ""
    """Characters stripped from both ends of each value, after its quotes are removed (`"<>,"` for postfix lines)."""

    @field_validator("value_split")
    @classmethod
    def _splits_differ(cls, value: str, info: ValidationInfo) -> str:
        shared = sorted(set(value) & set(info.data.get("field_split", "")))
        if shared:
            raise ValueError(f"'field_split' and 'value_split' both contain {', '.join(map(repr, shared))}")
        return value

    @field_validator("field_split", "value_split")
    @classmethod
    def _no_quotes(cls, value: str) -> str:
        if set(value) & set(_QUOTES):
            raise ValueError("quote characters cannot separate pairs or keys (they quote values)")
        return value

    @field_validator("exclude_keys")
    @classmethod
    def _disjoint(cls, value: list[str], info: ValidationInfo) -> list[str]:
        both = [key for key in info.data.get("include_keys", []) if key in value]
        if both:
            raise ValueError(f"'include_keys' and 'exclude_keys' both name {', '.join(map(repr, both))}")
        return value


def _pair_pattern(field_split: str, value_split: str) -> re.Pattern[str]:
    """A pair: a key that starts a token, a value-split character, then a quoted or plain value."""
    fs, vs = re.escape(field_split), re.escape(value_split)
    end = f"(?=[{fs}]|\\Z)"
    return re.compile(
        f"(?:^|(?<=[{fs}]))(?P<key>[^{fs}{vs}]++)[{vs}]"
        f"(?:\"(?P<dq>(?:[^\"\\\\]++|\\\\.)*+)\"{end}"
        f"|'(?P<sq>(?:[^'\\\\]++|\\\\.)*+)'{end}"
        f"|(?P<open>[{_QUOTES}])"
        f"|(?P<plain>[^{fs}]*+))",
        re.DOTALL,
    )


@register_stage(KvConfig)
class KvStage:
    """Parses each distinct line of a batch once with one compiled pattern."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: KvConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        self._pairs = _pair_pattern(config.field_split, config.value_split)
        self._include = frozenset(config.include_keys)
        self._exclude = frozenset(config.exclude_keys)
        self._no_pairs = f"no key{config.value_split[0]}value pairs"
        self._filtered = bool(config.trim_key or config.trim_value or config.prefix or self._include or self._exclude)

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields and `target` or the `include_keys` columns; unknown otherwise (any key may come)."""
        config = self.config
        if upstream is None or (config.target is None and not config.include_keys):
            return None
        return upstream | ({config.target} if config.target else {config.prefix + key for key in config.include_keys})

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types but those of `target` or the `include_keys` columns (unknown); none otherwise."""
        config = self.config
        if config.target is None and not config.include_keys:
            return {}
        written = {config.target} if config.target else {config.prefix + key for key in config.include_keys}
        return {name: kind for name, kind in upstream.items() if name not in written}

    def _parse_line(self, line: str) -> ParseResult:
        """The pairs of one line as `{key: value}` (text), or why it has none."""
        if not line:
            return ParseFailure("empty line")
        found = self._pairs.findall(line)
        if not found:
            return ParseFailure(f"{self._no_pairs}: {quote_line(line)}")
        config = self.config
        out: dict[str, Any] = {}
        for key, double, single, opened, plain in found:
            if opened:
                return self._unbalanced(line)
            if double or single:
                value = double or single
                if "\\" in value:
                    value = _UNESCAPE.sub(r"\1", value)
            else:
                value = plain
            if self._filtered:
                if config.trim_key:
                    key = key.strip(config.trim_key)
                if not key or (self._include and key not in self._include) or key in self._exclude:
                    continue
                if config.trim_value:
                    value = value.strip(config.trim_value)
                key = config.prefix + key
            if key not in out:
                out[key] = value
        return out

    def _unbalanced(self, line: str) -> ParseFailure:
        """The failure of a line whose first quoted value does not close."""
        match = next(match for match in self._pairs.finditer(line) if match["open"])
        return ParseFailure(
            f"unbalanced quote in the value of {match['key']!r} at char {match.start('open') + 1}: {quote_line(line)}"
        )

    def parse_lines(self, lines: Sequence[str]) -> list[ParseResult]:
        """One dict of text values per line (nested under `target` when set), or why the line has no pairs."""
        results = [self._parse_line(line) for line in lines]
        if self.config.target is None:
            return results
        return [r if isinstance(r, ParseFailure) else {self.config.target: r} for r in results]

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with one text column per key; lines without pairs follow `on_error`."""
        lines = lines_of(batch, self.config.field, self.ctx.node, self.config.on_error)
        if isinstance(lines, StageOutput):
            return lines
        rows = batch.num_rows
        encoded = pc.dictionary_encode(lines)
        results = [self._parse_line(line) for line in encoded.dictionary.to_pylist()]
        pairs = [{} if isinstance(result, ParseFailure) else result for result in results]
        parsed = ParsedRows()
        indices = encoded.indices
        reasons = [result.reason if isinstance(result, ParseFailure) else None for result in results]
        if any(reason is not None for reason in reasons):
            per_row = pa.array(reasons, pa.string()).take(indices)
            failed = pc.is_valid(per_row)
            parsed.failed = pc.indices_nonzero(failed).to_pylist()
            parsed.errors = per_row.filter(failed).to_pylist()
            indices = indices.filter(pc.invert(failed))
            log.debug("%s: %d of %d lines have no pairs", self.ctx.node, len(parsed.failed), rows)
        named = [self.config.prefix + key for key in self.config.include_keys]
        parsed.names = list(dict.fromkeys([*named, *(key for found in pairs for key in found)]))
        parsed.columns = [pa.array([found.get(key) for found in pairs], pa.string()).take(indices) for key in parsed.names]
        return finish(batch, lines, parsed, self.config.target, self.ctx.node, self.config.on_error)
