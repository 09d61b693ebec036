"""The `user_agent` stage: turn a User-Agent string into browser, OS, device and bot fields.

Parsing cannot be vectorised: ua-parser tries its ~1,000 regexes in order, first match wins, one string at
a time. Its Rust engine finds the rule (operators/ua_rules.py: about 60 µs per new agent, against 0.7-0.9 ms
for the Python one, with the Python engine's exact answers). Each distinct agent of a batch is parsed once,
results are remembered across batches as Arrow rows, and spread over the records with `take` (no per-row
Python).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import pyarrow as pa
import ua_parser
from pydantic import Field


class _ImportedOnFirstUse(types.ModuleType):
    """A stand-in for a module not imported yet: reading any attribute it lacks imports the module (which then
    replaces it in `sys.modules` and in its package) and reads it there.

    importlib's LazyLoader would do, but for `inspect.getmodule` (pydantic calls it for attribute docstrings),
    which reads `__file__` off every module in `sys.modules`: a stand-in has that attribute of its own.
    """

    def __getattr__(self, attribute: str) -> Any:  # noqa: ANN401 - whatever the module holds
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        module = importlib.import_module(name)
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, module)
        return getattr(module, attribute)


def _import_on_first_use(name: str) -> None:
    """Put a stand-in for module `name` in `sys.modules` (unless it is imported already): see `_ImportedOnFirstUse`.

    `user_agents` imports ua-parser's legacy `user_agent_parser` only for its own `parse()`, which this stage
    never calls (it builds `UserAgent`s from its own results); that import builds ua-parser's ~1,000 Python
    rules, ~0.12 s of every `loglake` start-up. Code that does call `user_agents.parse()` still gets it.
    """
    spec = importlib.util.find_spec(name)
    if name in sys.modules or spec is None:
        return
    stand_in = _ImportedOnFirstUse(name)
    stand_in.__file__, stand_in.__spec__ = spec.origin, spec
    sys.modules[name] = stand_in
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, stand_in)


_import_on_first_use("ua_parser.user_agent_parser")

from user_agents.parsers import UserAgent, parse_browser, parse_device, parse_operating_system  # noqa: E402 - after the above

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

