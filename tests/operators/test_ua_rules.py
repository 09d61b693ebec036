"""ua-parser's Rust engine finds the rule, Python answers: exactly the Python engine's results, on real agents."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import pytest
import ua_parser

from loglake.operators.ua_rules import RustIndexedResolver
from tests.support import APACHE_LOG

LOOSE_IN_RUST = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.107 Safari/537.36 slurp"
"""A real agent of the log: the spider rule `^.{0,100}(…|slurp|…)` matches it in Rust (read as `.*`), not in Python."""


@pytest.fixture(scope="module")
def agents() -> list[str]:
    """Every distinct agent of the real log, and variants that move words past the rules' bounded repetitions."""
    found = re.findall(r'"([^"]*)"$', APACHE_LOG.read_text(encoding="utf-8"), re.MULTILINE)
    distinct = list(dict.fromkeys(found))
    rng = random.Random(3)
    variants = [variant for agent in distinct for variant in (
        agent + " slurp", agent[: rng.randrange(1, max(2, len(agent)))], agent.upper(), "x" * rng.randrange(50, 150) + agent,
    )]
    assert len(distinct) > 500
    return distinct + variants


def _fields(result: ua_parser.Result) -> tuple[object, ...]:
    return result.user_agent, result.os, result.device


@pytest.mark.parametrize("load", [ua_parser.load_builtins, ua_parser.load_lazy_builtins], ids=["compiled-rules", "lazy-rules"])
def test_answers_are_the_python_engines_on_every_agent(agents: list[str], load: Callable[[], ua_parser.Matchers]) -> None:
    """The user_agent stage gives the resolver lazy rules (each Python regex compiled when first pointed at)."""
    python = ua_parser.Parser(ua_parser.BasicResolver(ua_parser.load_builtins()))
    rust_found = ua_parser.Parser(RustIndexedResolver(load()))
    differing = [agent for agent in agents if _fields(rust_found.parse(agent)) != _fields(python.parse(agent))]
    assert differing == []


def test_a_rule_only_the_loose_rust_reading_matches_is_passed_over() -> None:
    matchers = ua_parser.load_lazy_builtins()
    assert ua_parser.Parser(ua_parser.RegexResolver(matchers)).parse(LOOSE_IN_RUST).device is not None  # Rust alone: a spider
    result = ua_parser.Parser(RustIndexedResolver(matchers)).parse(LOOSE_IN_RUST)
    assert result.device is None and result.user_agent is not None and result.user_agent.family == "Chrome"
