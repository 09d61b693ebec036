"""ua-parser's rules found by its Rust engine (ua-parser-rs), answered exactly as its Python engine answers.

ua-parser tries ~1,000 regexes in order, first match wins. In Python that is about 0.7 ms for an agent no
cache has seen. ua-parser-rs runs them as one regex set in Rust, about 15x faster, but it reads bounded
repetitions loosely (`.{0,100}` as `.*`), so it can match a rule Python's `re` does not (3 of the 558 agents
of the sample Apache log). Its answers therefore only say *where to look*:

- each rule is handed to the Rust engine with a family that is its own index, so the engine answers "rule i
  matched first";
- the loose reading accepts everything the strict one does, so no rule before i matches in Python either;
- Python then runs rule i alone and, only if it fails, the rules after it; no answer from Rust means no
  rule matches in Python.

The result is ua-parser's Python result, at the Rust engine's speed plus one Python regex.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import ua_parser
import ua_parser_rs
from ua_parser.core import Domain, PartialResult

__all__ = ["RustIndexedResolver"]

_PATTERN = attrgetter("regex")
_DEVICE_PATTERN = attrgetter("regex", "regex_flag")


class _Domain:
    """One domain's rules: the Rust extractor that names the first loose match, and the Python matchers."""

    def __init__(self, extractor: Any, matchers: Sequence[Callable[[str], Any]]) -> None:
        self._extractor = extractor
        self._matchers = matchers

    def first(self, agent: str) -> Any:
        """The Python answer of the first rule that matches strictly, or None."""
        found = self._extractor.extract(agent)
        if found is None:
            return None
        for matcher in self._matchers[int(found.family):]:
            answer = matcher(agent)
            if answer is not None:
                return answer
        return None


class RustIndexedResolver:
    """A ua-parser resolver (callable as `resolver(agent, domains)`) with the Python resolver's exact answers."""

    def __init__(self, matchers: ua_parser.Matchers) -> None:
        agents, systems, devices = matchers
        self._user_agent = _Domain(ua_parser_rs.UserAgentExtractor((_PATTERN(m), str(i), None, None, None, None) for i, m in enumerate(agents)), agents)
        self._os = _Domain(ua_parser_rs.OSExtractor((_PATTERN(m), str(i), None, None, None, None) for i, m in enumerate(systems)), systems)
        self._device = _Domain(ua_parser_rs.DeviceExtractor((*_DEVICE_PATTERN(m), str(i), None, None) for i, m in enumerate(devices)), devices)

    def __call__(self, agent: str, domains: Domain, /) -> PartialResult:
        return PartialResult(
            domains=domains,
            string=agent,
            user_agent=self._user_agent.first(agent) if Domain.USER_AGENT in domains else None,
            os=self._os.first(agent) if Domain.OS in domains else None,
            device=self._device.first(agent) if Domain.DEVICE in domains else None,
        )
