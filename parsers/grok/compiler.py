"""From grok patterns (or plain regular expressions) to compiled regexes whose groups are exactly the captures.

Grok semantics follow Logstash: `%{NAME}` inserts a library pattern, `%{NAME:field}` captures it as
`field`, `%{NAME:field:int}` / `:float` also converts it; Oniguruma-style `(?<field>…)` and Python-style
`(?P<field>…)` groups capture too, with field names such as `[http][status]` for nested fields; a name
may be captured more than once. Every capture becomes a group `_g<N>` (the text is valid for both regex
engines) and, where the pattern uses no numbered group, every other group becomes non-capturing, so
`match.groups()` returns the captures, in order, in one call.

The `regex` module defines the semantics. Python's `re`, about twice as fast, stands in for it only where
the two read a line the same: the pattern compiles in both, without warnings, to the same groups (so no
POSIX classes, `\\p{…}`, set operations or variable-width lookbehind), is ASCII or case-sensitive, and the
line is ASCII. `re` then runs in ASCII mode, where its `\\s` is `regex`'s on ASCII text (not 0x1C–0x1F).
A grok pattern also gets a twin built from faster spellings of a few library patterns that read text without a
backslash alike (`speedups.BACKSLASH_FREE`); ASCII lines without a backslash, nearly all of an access log, use it.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import regex  # type: ignore[import-untyped]

from loglake.schemas.errors import ConfigError

__all__ = ["Kind", "KINDS", "NO_BACKSLASH", "ASCII", "NOT_ASCII", "Compiled", "expand_grok", "compile_pattern", "field_path", "capture_syntax"]

Kind = Literal["string", "int", "float"]
NO_BACKSLASH, ASCII, NOT_ASCII = 0, 1, 2
"""Classes of lines, by the search that reads them: ASCII without a backslash, other ASCII, the rest."""
KINDS: tuple[Kind, ...] = ("int", "float")
"""The conversions a grok capture may ask for (`%{NUMBER:bytes:int}`)."""

_REFERENCE = regex.compile(r"%\{(?P<pattern>\w+)(?::(?P<name>[\w@.\[\]-]+)(?::(?P<kind>\w*))?)?\}")
_LOOKS_LIKE_REFERENCE = regex.compile(r"%\{\w+(?::[^{}]*)?\}")
_TOKEN = regex.compile(
    r"""
      \\k<(?P<kref>[^>]*)>                        # named backreference \k<name>
    | \\g<(?P<gref>[^>]*)>                        # subroutine call \g<name>
    | \\(?P<numbered>[1-9])                       # numbered backreference
    | \\.                                         # any other escape
    | \[\^?\]?(?:\[:\^?[a-z]+:\]|\\.|[^\]])*\]    # character class (with POSIX classes inside)
    | \(\?P?<(?P<name>[^>=!][^>]*)>               # named group (?<name> / (?P<name>
    | \(\?'(?P<qname>[^']+)'                      # named group (?'name'
    | \(\?(?:P=|P>|&)(?P<pref>[^)]+)\)            # (?P=name), (?P>name), (?&name)
    | \(\?\((?P<cond>[^)]+)\)                     # conditional (?(name)…)
    | \(\?\#[^)]*\)                               # comment
    | \(\?(?P<unsafe>\||R\)|[+-]?[0-9])           # branch reset, recursion: numbering we cannot follow
    | \(\?(?P<flags>[a-zA-Z]*-?[a-zA-Z]*)[:)]     # flags (?i) / (?i:
    | (?P<plain>\((?!\?))                         # plain group
    """,
    regex.VERBOSE,
)
_NAME = regex.compile(r"[\w@.-]+|(?:\[[\w@.-]+\])+")
_PART = regex.compile(r"\[([^\]]+)\]")
_UNSAFE_RE = (re.error, FutureWarning, DeprecationWarning, SyntaxWarning, OverflowError, RecursionError)


def field_path(name: str) -> tuple[str, ...]:
    """`[http][status]` → ("http", "status"); `clientip` → ("clientip",); anything else is a ConfigError."""
    if not _NAME.fullmatch(name):
        raise ConfigError(f"invalid field name '{name}' (use `name` or `[outer][inner]`)")
    return tuple(_PART.findall(name)) if name.startswith("[") else (name,)


def capture_syntax(field: str, patterns: Iterable[str], library: Mapping[str, str]) -> str | None:
    """The pattern name that first captures `field` (`NUMBER` for `%{NUMBER:response}`) in `patterns` as expanded
    against `library`, or None (a named group captures it, or nothing does)."""
    pending = list(patterns)[::-1]
    seen: set[str] = set()
    while pending:
        for found in _REFERENCE.finditer(pending.pop()):
            name, captured = found.group("pattern", "name")
            if captured == field:
                return str(name)
            if name not in seen and name in library:
                seen.add(name)
                pending.append(library[name])
    return None


def _set_kind(kinds: dict[str, Kind], name: str, kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown conversion '{kind}' for '{name}' (valid: {', '.join(KINDS)})")
    known = kinds.get(name)
    if known is not None and known != kind:
        raise ConfigError(f"'{name}' is converted to both {known} and {kind}")
    kinds[name] = kind


def expand_grok(pattern: str, library: Mapping[str, str], kinds: dict[str, Kind]) -> str:
    """The regular expression a grok pattern stands for; typed captures are recorded in `kinds`.

    Each `%{NAME:field}` becomes `(?<field>…)` and each `%{NAME}` a non-capturing group.

    Raises:
        ConfigError: an unknown or self-referring pattern name, a malformed reference, an unknown conversion.
    """
    memo: dict[str, str] = {}

    def expand(text: str, stack: tuple[str, ...]) -> str:
        leftover = _LOOKS_LIKE_REFERENCE.search(_REFERENCE.sub("", text))
        if leftover is not None:
            where = f" (in pattern {stack[-1]})" if stack else ""
            raise ConfigError(f"malformed reference '{leftover.group()}'{where}; write %{{NAME}}, %{{NAME:field}} or %{{NAME:field:int}}")
        return str(_REFERENCE.sub(lambda found: replace(found, stack), text))

    def replace(found: Any, stack: tuple[str, ...]) -> str:
        name, field, kind = found.group("pattern", "name", "kind")
        if name in stack:
            raise ConfigError(f"pattern {name} refers to itself: {' → '.join((*stack[stack.index(name):], name))}")
        body = memo.get(name)
        if body is None:
            definition = library.get(name)
            if definition is None:
                close = difflib.get_close_matches(name, list(library), n=1, cutoff=0.75)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                where = f" (in pattern {stack[-1]})" if stack else ""
                raise ConfigError(f"unknown pattern name '{name}'{where}{hint}")
            body = memo[name] = expand(definition, (*stack, name))
        if field is None:
            return f"(?:{body})"
        field_path(field)
        if kind is not None:
            _set_kind(kinds, field, kind)
        return f"(?<{field}>{body})"

    return expand(pattern, ())


@dataclass(frozen=True)
class Compiled:
    """One configured pattern, compiled once: both engines' `search` and the capture each group holds."""

    source: str
    """The pattern as configured."""
    names: tuple[str, ...]
    """The capture name of each value in `groups(match)`, in order (a name may repeat)."""
    search: Callable[[str], Any]
    """`re`'s search where it agrees with `regex` (see the module docs), else `regex`'s."""
    reference: Callable[[str], Any]
    """`regex`'s search, the semantics, for the lines `search` may read differently (not ASCII)."""
    exact: bool
    """`match.groups()` is exactly the captures (no other group left capturing)."""
    indexes: tuple[int, ...]
    """The group number of each capture, for patterns that are not `exact`."""
    fast: bool
    """Whether `search` is `re`'s."""
    unescaped: Callable[[str], Any] | None = None
    """`re`'s search of the pattern's backslash-free twin (see `speedups`), for ASCII lines without a backslash;
    None when the pattern has no twin."""

    def searcher(self, line_class: int) -> Callable[[str], Any]:
        """The search for lines of a class (`NO_BACKSLASH`, `ASCII` or `NOT_ASCII`)."""
        if line_class == NO_BACKSLASH and self.unescaped is not None:
            return self.unescaped
        return self.reference if line_class == NOT_ASCII else self.search

    def groups(self, match: Any) -> tuple[str | None, ...]:
        """The captures of a match, in `names` order."""
        if self.exact:
            return tuple(match.groups())
        if len(self.indexes) == 1:
            return (match.group(self.indexes[0]),)
        return tuple(match.group(*self.indexes)) if self.indexes else ()


def _rewrite(text: str, strip: bool) -> tuple[str, list[str], bool]:
    """Named groups renamed `_g<N>`, references to them renamed, plain groups made non-capturing (with `strip`).

    Returns the new text, the capture names in group order, and whether plain groups were stripped: not
    when the pattern uses numbered groups, branch resets, recursion or verbose mode.
    """
    tokens = list(_TOKEN.finditer(text))
    names = [token.group(token.lastgroup) for token in tokens if token.lastgroup in ("name", "qname")]
    first = {name: index for index, name in reversed(list(enumerate(names)))}
    for token in tokens:
        kind, value = token.lastgroup, token.group(token.lastgroup) if token.lastgroup else ""
        numbered = kind in ("numbered", "unsafe") or (kind in ("gref", "cond") and value.isdigit())
        verbose = kind == "flags" and "x" in value.split("-")[0]
        if numbered or verbose:
            strip = False

    def renamed(name: str) -> str:
        return f"_g{first[name]}" if name in first else name

    out: list[str] = []
    done = 0
    count = 0
    for token in tokens:
        kind = token.lastgroup
        piece = token.group()
        if kind in ("name", "qname"):
            piece = f"(?P<_g{count}>"
            count += 1
        elif kind == "kref":
            piece = f"(?P={renamed(token.group(kind))})"
        elif kind == "pref":
            piece = piece[: -1 - len(token.group(kind))] + renamed(token.group(kind)) + ")"
        elif kind == "gref":
            piece = f"\\g<{renamed(token.group(kind))}>"
        elif kind == "cond":
            piece = f"(?({renamed(token.group(kind))})"
        elif kind == "plain" and strip:
            piece = "(?:"
        else:
            continue
        out.append(text[done:token.start()])
        out.append(piece)
        done = token.end()
    out.append(text[done:])
    return "".join(out), names, strip


def _case_insensitive(text: str) -> bool:
    return any("i" in (token.group("flags") or "").split("-")[0] for token in _TOKEN.finditer(text))


def compile_pattern(source: str, text: str, backslash_free: str | None = None) -> Compiled:
    """Compile a regular expression (a grok pattern already expanded) so its groups are exactly its captures.

    `backslash_free` is a twin of `text` that reads lines without a backslash alike, faster (see `speedups`).

    Raises:
        ConfigError: the pattern does not compile, or names a capture in a way no field can hold.
    """
    rewritten, names, stripped = _rewrite(text, strip=True)
    for name in names:
        field_path(name)
    try:
        reference = regex.compile(rewritten)
    except regex.error as exc:
        raise ConfigError(f"does not compile: {_reason(exc, text)}") from None
    except (OverflowError, RecursionError, ValueError) as exc:
        raise ConfigError(f"does not compile: {exc}") from None
    indexes = tuple(reference.groupindex[f"_g{index}"] for index in range(len(names)))
    exact = stripped and reference.groups == len(names) and indexes == tuple(range(1, len(names) + 1))
    fast = _fast_twin(rewritten, reference) if rewritten.isascii() or not _case_insensitive(rewritten) else None
    unescaped = _fast_twin(_rewrite(backslash_free, strip=True)[0], reference) if fast is not None and backslash_free else None
    return Compiled(
        source=source,
        names=tuple(names),
        search=fast.search if fast is not None else reference.search,
        reference=reference.search,
        exact=exact,
        indexes=indexes,
        fast=fast is not None,
        unescaped=unescaped.search if unescaped is not None else None,
    )


def _fast_twin(text: str, reference: Any) -> re.Pattern[str] | None:
    """`re`'s compilation of the text, reading ASCII lines exactly as `regex` does, or None if it cannot.

    With `re.ASCII`, `\\s` is the same six characters as `regex`'s among ASCII ones (without it `re` adds
    0x1C–0x1F); a pattern `re` has any doubt about (a warning) or that has other groups is left to `regex`.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fast = re.compile(text, re.ASCII)
    except _UNSAFE_RE:
        return None
    if fast.groups != reference.groups or dict(fast.groupindex) != dict(reference.groupindex):
        return None
    return fast


def _reason(exc: Any, text: str) -> str:
    """A regex error, with a little of `text` around where it happened when the same error arises there."""
    message = str(getattr(exc, "msg", None) or exc)
    try:
        regex.compile(text)
    except regex.error as original:
        position = original.pos
        if str(original.msg) == message and isinstance(position, int) and 0 <= position <= len(text):
            message += f" at {text[max(0, position - 30):position]!r} ← here"
    except (OverflowError, RecursionError, ValueError):
        pass
    return message
