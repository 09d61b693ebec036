"""The faster spellings of library patterns (parsers/grok/speedups.py) match exactly what pygrok's do.

Each rewrite is compared with pygrok's definition at every position of real log lines and of generated text
made of the characters the pattern cares about, in both engines; then whole lines through the stage are
compared with pygrok itself, backslashes and non-ASCII text included.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
import regex  # type: ignore[import-untyped]
from pygrok import Grok  # type: ignore[import-untyped]

from loglake.parsers.grok.compiler import expand_grok
from loglake.parsers.grok.library import load_library
from loglake.parsers.grok.speedups import BACKSLASH_FREE, EQUIVALENT, Rewrite
from loglake.parsers.grok.stage import grok_matcher
from tests.parsers.test_grok import APACHE, APACHE_ERRORS

LIBRARY = load_library()
ENGINES: dict[str, Callable[[str], Any]] = {
    "re": lambda text: re.compile(text),
    "re-ascii": lambda text: re.compile(text, re.ASCII),
    "regex": lambda text: regex.compile(text),
}
ALPHABET = '0123456789abcdefAFxyz:.+-% "\'`\\/[]é\t'
"""Characters the rewritten patterns branch on (digits, hex, separators, quotes, backslash), and some others."""


def _corpus(seed: int, backslashes: bool = True) -> list[str]:
    """Real lines (a sample of the Apache access and error logs) and short generated strings over `ALPHABET`."""
    rng = random.Random(seed)
    real = rng.sample(APACHE, 150) + APACHE_ERRORS[:50]
    generated = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24))) for _ in range(3000)]
    generated += ['"a\\"b" c', "'it\\'s'", '"\\\\"', '""', "``", "2001:db8::1", "::ffff:1.2.3.4", "fe80::1%eth0", "-1.5e3",
                  "+.5", "1999", "20150517"]
    return [text for text in real + generated if backslashes or "\\" not in text]


def _spans(pattern: Any, text: str) -> list[tuple[int, int] | None]:
    """Where `pattern` matches starting at each position of `text` (None: it does not)."""
    found = (pattern.match(text, position) for position in range(len(text) + 1))
    return [None if match is None else match.span() for match in found]


def _assert_alike(name: str, rewrite: Rewrite, engine: str, corpus: list[str]) -> None:
    original = ENGINES[engine](expand_grok(rewrite.original, LIBRARY, {}))
    faster = ENGINES[engine](expand_grok(rewrite.faster, LIBRARY, {}))
    differ = [text for text in corpus if _spans(original, text) != _spans(faster, text)]
    assert not differ, f"{name} ({engine}) reads {len(differ)} texts differently, e.g. {differ[:3]!r}"


@pytest.mark.parametrize("name", [*EQUIVALENT, *BACKSLASH_FREE])
def test_pygrok_still_ships_each_rewritten_definition(name: str) -> None:
    """A rewrite applies only to pygrok's text as it is: if pygrok changes it, this says so (the rewrite would be inert)."""
    rewrite = EQUIVALENT.get(name) or BACKSLASH_FREE[name]
    assert LIBRARY[name] == rewrite.original


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", EQUIVALENT)
def test_equivalent_rewrites_match_alike_at_every_position(name: str, engine: str) -> None:
    _assert_alike(name, EQUIVALENT[name], engine, _corpus(seed=len(name)))


@pytest.mark.parametrize("engine", ["re-ascii", "regex"])
@pytest.mark.parametrize("name", BACKSLASH_FREE)
def test_backslash_free_twins_match_alike_on_text_without_a_backslash(name: str, engine: str) -> None:
    _assert_alike(name, BACKSLASH_FREE[name], engine, _corpus(seed=7, backslashes=False))


def test_the_quoted_string_twin_differs_on_an_escaped_quote() -> None:
    """Why lines with a backslash keep the exact pattern: the twin ends a quoted string at an escaped quote."""
    rewrite = BACKSLASH_FREE["QUOTEDSTRING"]
    text = '"say \\"hi\\"" tail'
    assert re.compile(rewrite.original).match(text).group() == '"say \\"hi\\""'
    assert re.compile(rewrite.faster).match(text).group() == '"say \\"'


def _as_pygrok(row: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in row.items() if value not in (None, "")}


def test_combined_lines_with_escapes_and_non_ascii_parse_as_pygrok_does() -> None:
    """One batch of plain lines, lines with escaped quotes or a backslash, and non-ASCII lines: each parsed as pygrok's
    own regex (the `regex` module over the unmodified library) parses it."""
    escaped = [line.replace('" "', '" "\\"quoted\\" ', 1) for line in APACHE[:300:7]]
    backslash = [line.replace("GET /", "GET /\\x16\\x03", 1) for line in APACHE[1:300:11]]
    accented = [line.replace('"-"', '"https://café.example/"', 1) for line in APACHE[2:300:13]]
    lines = APACHE[:2000] + escaped + backslash + accented
    parsed = grok_matcher(["%{COMBINEDAPACHELOG}"], LIBRARY).parse(pa.array(lines))
    names = [name for name, _ in parsed.fields]
    columns = [column.to_pylist() for _, column in parsed.fields]
    reference = Grok("%{COMBINEDAPACHELOG}")
    for index, line in enumerate(lines):
        ours = None if index in parsed.missed else _as_pygrok(dict(zip(names, (column[index] for column in columns))))
        theirs = reference.match(line)
        assert ours == (None if theirs is None else _as_pygrok(theirs)), line
    assert any('\\"quoted\\"' in str(value) for value in columns[names.index("agent")])


def test_a_redefined_library_name_is_used_as_written() -> None:
    """`pattern_definitions` replacing QUOTEDSTRING (or YEAR) turns the rewrite of that name off."""
    library = load_library(definitions={"QUOTEDSTRING": r"<[^>]*>", "YEAR": r"\d{3}"})
    parsed = grok_matcher(["%{QS:quoted} %{YEAR:year}"], library).parse(pa.array(['"no" <yes> 2015', "<a> 201"]))
    assert dict((name, column.to_pylist()) for name, column in parsed.fields) == {"quoted": ["<yes>", "<a>"], "year": ["201", "201"]}


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()], ids=str)
def test_lines_with_a_backslash_are_found_in_any_text_layout(kind: pa.DataType) -> None:
    """Slices and every string layout: a line with an escaped quote keeps it, the lines around it parse as usual."""
    escaped = APACHE[5].replace('" "', '" "a \\"b\\" ', 1)
    lines = pa.array(["", APACHE[3], APACHE[4], escaped, APACHE[6], ""], kind).slice(2, 3)
    parsed = grok_matcher(["%{COMBINEDAPACHELOG}"], LIBRARY).parse(lines)
    agents = dict(parsed.fields)["agent"].to_pylist()
    assert agents[1].startswith('"a \\"b\\" ') and agents[1].endswith('"')
    assert [agents[0], agents[2]] == [Grok("%{COMBINEDAPACHELOG}").match(line)["agent"] for line in (APACHE[4], APACHE[6])]
