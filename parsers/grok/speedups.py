"""Faster, equivalent spellings of the hottest library patterns, used in place of pygrok's text.

Python's `re` pays for every atomic group it enters and walks a two-character negated class
(`[^\\\\"]`) one character at a time, while a possessive quantifier or `[^"]*` runs in one step. The
COMBINEDAPACHELOG regex spends most of its time in exactly those spots, so:

- `EQUIVALENT` rewrites match what pygrok's definitions match, at every position, in both engines;
- `BACKSLASH_FREE` twins match what the definitions match on text without a backslash, and are used only
  for such lines (the matcher checks, a whole batch at once).

Each rewrite applies only while the library holds pygrok's definition, character for character: a name the
user redefines (`pattern_definitions`, `pattern_dirs`) is used as written. The tests check both engines agree
position by position on real log lines and on generated text, and that pygrok still ships these definitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Rewrite", "EQUIVALENT", "BACKSLASH_FREE", "faster_library", "backslash_free_library"]


@dataclass(frozen=True)
class Rewrite:
    """pygrok's definition of a pattern, a faster text to use instead, and why the two match alike."""

    original: str
    faster: str
    why: str


_DOTTED_QUAD = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
_IPV6 = (
    r"((([0-9A-Fa-f]{1,4}:){7}([0-9A-Fa-f]{1,4}|:))|(([0-9A-Fa-f]{1,4}:){6}(:[0-9A-Fa-f]{1,4}|(" + _DOTTED_QUAD + r")|:))"
    r"|(([0-9A-Fa-f]{1,4}:){5}(((:[0-9A-Fa-f]{1,4}){1,2})|:(" + _DOTTED_QUAD + r")|:))"
    r"|(([0-9A-Fa-f]{1,4}:){4}(((:[0-9A-Fa-f]{1,4}){1,3})|((:[0-9A-Fa-f]{1,4})?:(" + _DOTTED_QUAD + r"))|:))"
    r"|(([0-9A-Fa-f]{1,4}:){3}(((:[0-9A-Fa-f]{1,4}){1,4})|((:[0-9A-Fa-f]{1,4}){0,2}:(" + _DOTTED_QUAD + r"))|:))"
    r"|(([0-9A-Fa-f]{1,4}:){2}(((:[0-9A-Fa-f]{1,4}){1,5})|((:[0-9A-Fa-f]{1,4}){0,3}:(" + _DOTTED_QUAD + r"))|:))"
    r"|(([0-9A-Fa-f]{1,4}:){1}(((:[0-9A-Fa-f]{1,4}){1,6})|((:[0-9A-Fa-f]{1,4}){0,4}:(" + _DOTTED_QUAD + r"))|:))"
    r"|(:(((:[0-9A-Fa-f]{1,4}){1,7})|((:[0-9A-Fa-f]{1,4}){0,5}:(" + _DOTTED_QUAD + r"))|:)))(%.+)?"
)

EQUIVALENT: dict[str, Rewrite] = {
    "IPV6": Rewrite(
        _IPV6,
        r"(?=[0-9A-Fa-f]{0,4}:)" + _IPV6,
        "every branch starts with 1-4 hex digits and a colon, or a colon: the lookahead only fails where all "
        "nine branches would (an IPv4 address or a host name, the usual client), and captures nothing",
    ),
    "YEAR": Rewrite(
        r"(?>\d\d){1,2}",
        r"(?:\d\d){1,2}",
        "an atomic group around two digits has one way to match, so it changes nothing",
    ),
    "BASE10NUM": Rewrite(
        r"(?<![0-9.+-])(?>[+-]?(?:(?:[0-9]+(?:\.[0-9]+)?)|(?:\.[0-9]+)))",
        r"(?<![0-9.+-])[+-]?+(?:[0-9]++(?:\.[0-9]++)?+|\.[0-9]++)",
        "the atomic group keeps its first match: the sign if any, all digits, then a dot and all digits if "
        "there are; possessive quantifiers keep the same, and the branches start with a digit and a dot, so "
        "the second cannot match where the first did",
    ),
}
"""Library patterns spelt faster, matching the same text at every position in `re` and `regex`."""

BACKSLASH_FREE: dict[str, Rewrite] = {
    "QUOTEDSTRING": Rewrite(
        r"""(?>(?<!\\)(?>"(?>\\.|[^\\"]+)+"|""|(?>'(?>\\.|[^\\']+)+')|''|(?>`(?>\\.|[^\\`]+)+`)|``))""",
        r"""(?>"[^"]*"|'[^']*'|`[^`]*`)""",
        "without backslashes there are no escapes, the lookbehind always holds and a quoted string ends at "
        "the next quote of its kind",
    ),
}
"""Twins of library patterns that match the same as pygrok's definitions on text without a backslash."""


def _applied(library: Mapping[str, str], rewrites: Mapping[str, Rewrite]) -> dict[str, str]:
    faster = dict(library)
    for name, rewrite in rewrites.items():
        if faster.get(name) == rewrite.original:
            faster[name] = rewrite.faster
    return faster


def faster_library(library: Mapping[str, str]) -> dict[str, str]:
    """`library` with each `EQUIVALENT` rewrite applied where it still holds pygrok's definition."""
    return _applied(library, EQUIVALENT)


def backslash_free_library(library: Mapping[str, str]) -> dict[str, str]:
    """`faster_library(library)` with the `BACKSLASH_FREE` twins too: for lines without a backslash only."""
    return _applied(faster_library(library), BACKSLASH_FREE)
