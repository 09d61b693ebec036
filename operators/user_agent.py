"""The `user_agent` stage: turn a User-Agent string into browser, OS, device and bot fields.

Parsing cannot be vectorised: ua-parser tries its ~1,000 regexes in order, first match wins, one string at
a time. Its Rust engine finds the rule (operators/ua_rules.py: about 60 µs per new agent, against 0.7-0.9 ms
for the Python one, with the Python engine's exact answers). Each distinct agent of a batch is parsed once,
results are remembered across batches as Arrow rows, and spread over the records with `take` (no per-row
Python).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import pyarrow as pa
import ua_parser
from pydantic import Field
from user_agents.parsers import UserAgent, parse_browser, parse_device, parse_operating_system

from loglake.operators.distinct_cache import DistinctCache, text_column, with_column
from loglake.operators.ua_rules import RustIndexedResolver
from loglake.schemas.config import StageConfig
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput

__all__ = ["UserAgentConfig", "UserAgentStage", "USER_AGENT_TYPE"]

USER_AGENT_TYPE = pa.struct([
    pa.field("browser_family", pa.string()),
    pa.field("browser_version", pa.string()),
    pa.field("os_family", pa.string()),
    pa.field("os_version", pa.string()),
    pa.field("device_family", pa.string()),
    pa.field("device_brand", pa.string()),
    pa.field("device_model", pa.string()),
    pa.field("is_mobile", pa.bool_()),
    pa.field("is_tablet", pa.bool_()),
    pa.field("is_pc", pa.bool_()),
    pa.field("is_bot", pa.bool_()),
])
"""The struct a `user_agent` stage writes (versions as dotted strings, null when the agent names none)."""

_EMPTY = frozenset({"", "-"})
"""Agents that say nothing (`-` is what Apache and nginx log for a missing header): a null struct."""


class UserAgentConfig(StageConfig):
    """Parse a User-Agent header into a struct column.

    Example:
        ua: {type: user_agent, field: agent, target: ua}
    """

    type: Literal["user_agent"]
    field: str
    """Column holding the raw User-Agent string."""
    target: str = "user_agent"
    """Struct column to write; replaced if present."""
    cache_size: int = Field(default=10_000, ge=0)
    """Distinct strings remembered across batches (parsing is the slow part)."""


class _Parsed(UserAgent):  # type: ignore[misc]
    """A `user_agents.UserAgent` built from a cache-free ua-parser result (its own parse goes through a 200-entry cache)."""

    def __init__(self, agent: str, result: ua_parser.Result) -> None:  # noqa: D107 - no super().__init__: it would parse again
        self.ua_string = agent
        browser = result.user_agent or ua_parser.UserAgent()
        os = result.os or ua_parser.OS()
        device = result.device or ua_parser.Device()
        self.browser = parse_browser(browser.family, browser.major, browser.minor, browser.patch)
        self.os = parse_operating_system(os.family, os.major, os.minor, os.patch, os.patch_minor)
        self.device = parse_device(device.family, device.brand, device.model)


_parser: ua_parser.Parser | None = None
_parser_lock = threading.Lock()


def _shared_parser() -> ua_parser.Parser:
    """One cache-free ua-parser for the process, its rules found in Rust (building its regex sets takes ~0.15 s).

    The rules are ua-parser's lazy matchers: a rule's Python regex is compiled the first time the Rust engine
    points at it (a few dozen in a day of logs), not all ~1,300 up front (~0.1 s at every start).
    """
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = ua_parser.Parser(RustIndexedResolver(ua_parser.load_lazy_builtins()))
        return _parser


@register_stage(UserAgentConfig)
class UserAgentStage:
    """Parses each distinct agent once (remembered across batches) and spreads the results with a take."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: UserAgentConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        self._parser = _shared_parser()
        self._cache = DistinctCache(config.cache_size, USER_AGENT_TYPE)

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields and `target`."""
        return None if upstream is None else upstream | {self.config.target}

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types, `target` the user-agent struct."""
        return {**upstream, self.config.target: USER_AGENT_TYPE}

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with `target` set; a missing, null, empty or `-` agent gives a null struct."""
        agents = text_column(batch, self.config.field) if batch.num_rows else None
        if agents is None:
            return StageOutput(main=with_column(batch, self.config.target, pa.nulls(batch.num_rows, USER_AGENT_TYPE)))
        return StageOutput(main=with_column(batch, self.config.target, self._cache.lookup(agents, self._parse).rows))

    def _parse(self, agent: str) -> tuple[Any, ...] | None:
        """One agent's struct values, in `USER_AGENT_TYPE` order; None for an agent that says nothing."""
        agent = agent.strip()
        if agent in _EMPTY:
            return None
        parsed = _Parsed(agent, self._parser.parse(agent))
        return (
            parsed.browser.family, parsed.browser.version_string or None,
            parsed.os.family, parsed.os.version_string or None,
            parsed.device.family, parsed.device.brand, parsed.device.model,
            parsed.is_mobile, parsed.is_tablet, parsed.is_pc, parsed.is_bot,
        )

