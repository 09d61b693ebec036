"""The `regex` stage: one regular expression (the `regex` module's syntax), its named groups as fields."""

from __future__ import annotations

from typing import Literal

from loglake.parsers.grok.compiler import compile_pattern
from loglake.parsers.grok.matcher import Matcher
from loglake.parsers.grok.stage import CaptureConfig, CaptureStage
from loglake.schemas.errors import ConfigError
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext

__all__ = ["RegexConfig", "RegexStage"]


class RegexConfig(CaptureConfig):
    """Capture fields from text with a regular expression: each named group becomes a field.

    Example:
        parse: {type: regex, field: message, pattern: '(?P<level>[A-Z]+) \\[(?P<thread>[^\\]]+)\\] (?P<text>.*)'}
    """

    type: Literal["regex"]
    pattern: str
    """Regular expression searched for anywhere in the text (anchor it with `^`/`$`); `(?P<name>…)` and `(?<name>…)` groups become fields, `[a][b]` names nested ones."""


@register_stage(RegexConfig)
class RegexStage(CaptureStage):
    """A regex compiled once; lines matched once per distinct value per batch, groups kept as text ("" stays "")."""

    captures_what = "regex"

    def __init__(self, config: RegexConfig, ctx: NodeContext) -> None:
        try:
            compiled = compile_pattern(config.pattern, config.pattern)
        except ConfigError as exc:
            raise ConfigError(f"regex {config.pattern!r} {exc.message}", field="pattern") from None
        if not compiled.names:
            raise ConfigError(f"regex {config.pattern!r} has no named group, so nothing to capture; write (?P<name>…)", field="pattern")
        try:
            matcher = Matcher([compiled], {}, keep_empty=True)
        except ConfigError as exc:
            raise ConfigError(exc.message, field="pattern") from None
        super().__init__(config, ctx, matcher, tag="", miss="the pattern did not match")
