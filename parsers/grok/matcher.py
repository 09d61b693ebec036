"""Matching distinct lines against compiled patterns and turning the captures into typed Arrow columns.

The hot loop is one `search` and one `groups()` call per line (the search chosen by the line's class, see
`compiler`); the tuples of captured strings become one Arrow struct array in one call, and everything after
(empty captures, repeated names, conversions, nesting) is vectorised over whole columns.

The loop stays in Python on purpose: Arrow's vectorised `extract_regex` (RE2) rejects the lookarounds and
atomic groups of the grok library (IPORHOST, NUMBER, QS), and even a pattern relaxed for it extracted
COMBINEDAPACHELOG's 12 captures about 8x slower than `re` on real lines (RE2 finds submatches with its NFA);
it only wins on small patterns with two or three captures, where `re` is not the bottleneck. On a simple
combined-log regex (12 captures, no lookarounds) RE2 took 4.2 µs a line, Polars' Rust `regex`
(`str.extract_groups`, one thread) 3.5, `re` 2.3 (2026-11-22). Building the columns from the match tuples in
one `pa.array` call over a struct type (0.5 µs a line) beat a column at a time and one flat array taken apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loglake.parsers.grok.compiler import ASCII, NO_BACKSLASH, NOT_ASCII, Compiled, Kind, field_path
from loglake.schemas.errors import ConfigError

__all__ = ["Capture", "Parsed", "Matcher"]

_ARROW_KINDS: dict[Kind, pa.DataType] = {"string": pa.string(), "int": pa.int64(), "float": pa.float64()}
"""The column type of a capture of each kind."""
_INT = r"^[+-]?[0-9]+$"
_FLOAT = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_INT64 = (-(2**63), 2**63 - 1)

Row = tuple[str | None, ...]


@dataclass(frozen=True)
class Capture:
    """One output field: its name as written, its path (`[a][b]` → a, b), its type and the row slots holding it."""

    name: str
    path: tuple[str, ...]
    kind: Kind
    slots: tuple[int, ...]
    """Positions in a row; more than one when the name is captured more than once (first non-empty wins)."""


@dataclass
class Parsed:
    """Captures of distinct lines as top-level columns, and which lines failed."""

    fields: list[tuple[str, pa.Array]]
    """Top-level column name and values (nested names as structs), one value per line."""
    missed: list[int]
    """Lines no pattern matched."""
    problems: dict[int, str] = field(default_factory=dict)
    """Lines that matched but whose captures could not be converted, and why."""


def _projector(positions: list[int], width: int) -> Callable[[Row], Row] | None:
    """Turns one pattern's groups into the shared row layout; None when they already are."""
    if positions == list(range(width)):
        return None
    source = {slot: index for index, slot in enumerate(positions)}
    picks = [source.get(slot, len(positions)) for slot in range(width)]
    pick = itemgetter(*picks)
    if width == 1:
        return lambda groups: (pick((*groups, None)),)
    return lambda groups: pick((*groups, None))


def _kind_of(path: tuple[str, ...], name: str, kinds: Mapping[str, Kind]) -> Kind:
    """The conversion asked for a field under any of its spellings (`a` and `[a]` are one field)."""
    found = {kinds[other] for other in kinds if other == name or field_path(other) == path}
    if len(found) > 1:
        raise ConfigError(f"'{name}' is converted to both {' and '.join(sorted(found))}")
    return found.pop() if found else "string"


class Matcher:
    """Configured patterns compiled once; finds the first that matches each line and builds the columns.

    Safe to share between threads: all per-call state is local.
    """

    def __init__(self, patterns: Sequence[Compiled], kinds: Mapping[str, Kind], keep_empty: bool = False) -> None:
        self.patterns = tuple(patterns)
        self.keep_empty = keep_empty
        slots: dict[tuple[tuple[str, ...], int], int] = {}
        names: dict[tuple[str, ...], str] = {}
        layouts: list[list[int]] = []
        for pattern in self.patterns:
            seen: Counter[tuple[str, ...]] = Counter()
            positions = []
            for name in pattern.names:
                path = field_path(name)
                names.setdefault(path, name)
                positions.append(slots.setdefault((path, seen[path]), len(slots)))
                seen[path] += 1
            layouts.append(positions)
        self.width = len(slots)
        # rows (tuples of captured strings) become one struct array in one call, then its columns
        self._row_type = pa.struct([(f"_{slot}", pa.string()) for slot in range(self.width)])
        self._plans = [(pattern, _projector(positions, self.width)) for pattern, positions in zip(self.patterns, layouts)]
        self.captures = tuple(
            Capture(name, path, _kind_of(path, name, kinds), tuple(slot for (p, _), slot in slots.items() if p == path))
            for path, name in names.items()
        )
        _check_paths(self.captures)
        self._any_fast = any(pattern.fast for pattern in self.patterns)
        self._any_unescaped = any(pattern.unescaped is not None for pattern in self.patterns)

    def types(self) -> dict[str, pa.DataType]:
        """The type of each top-level column `parse` gives (nested names as structs), in order."""

        def build(node: dict[str, Any]) -> dict[str, pa.DataType]:
            return {name: pa.struct(list(build(value).items())) if isinstance(value, dict) else value for name, value in node.items()}

        return build(_tree([(capture, _ARROW_KINDS[capture.kind]) for capture in self.captures]))

    def parse(self, lines: pa.Array) -> Parsed:
        """Match each (distinct, non-null) line of a string array; captures as columns, failures by position."""
        rows = self._rows(lines)
        missed = [index for index, row in enumerate(rows) if row is None] if None in rows else []
        slots = pa.array(rows, self._row_type).flatten() if self.width else []
        problems: dict[int, str] = {}
        flat = [(capture, self._column(capture, slots, problems)) for capture in self.captures]
        return Parsed(_nest(flat), missed, problems)

    def _rows(self, lines: pa.Array) -> list[Row | None]:
        """Each line's captures in the row layout (None where no pattern matched), each read by its class's search.

        All lines go through the commonest class's search in one pass, then the few of other classes again.
        """
        values: list[str] = lines.to_pylist()
        line_classes = self._line_classes(lines)
        if line_classes is None:
            return self._match(values, NO_BACKSLASH)
        counts = np.bincount(line_classes, minlength=3)
        common = int(counts.argmax())
        rows = self._match(values, common)
        for line_class in np.flatnonzero(counts).tolist():
            if line_class != common:
                positions = np.flatnonzero(line_classes == line_class).tolist()
                for index, row in zip(positions, self._match([values[index] for index in positions], line_class)):
                    rows[index] = row
        return rows

    def _line_classes(self, lines: pa.Array) -> np.ndarray | None:
        """Each line's class (`compiler.NO_BACKSLASH`, `ASCII`, `NOT_ASCII`), or None when all are `NO_BACKSLASH`.

        Only classes some pattern reads with another search are told apart: when no pattern has an `re`
        search (or no backslash-free twin), the non-ASCII lines (or those with a backslash) are not looked for.
        """
        not_ascii = None
        if self._any_fast and len(lines):
            ascii_lines = pc.string_is_ascii(lines)
            if not pc.all(ascii_lines).as_py():
                not_ascii = pc.invert(ascii_lines).to_numpy(zero_copy_only=False)
        backslash = _lines_holding(lines, ord("\\")) if self._any_unescaped else None
        if not_ascii is None and backslash is None:
            return None
        line_classes = np.zeros(len(lines), dtype=np.int8)
        if backslash is not None:
            line_classes[backslash] = ASCII
        if not_ascii is not None:
            line_classes[not_ascii] = NOT_ASCII
        return line_classes

    def _match(self, values: list[str], line_class: int) -> list[Row | None]:
        """Each value's captures in the row layout, None where no pattern matched; all values of one class.

        Each match object is dropped as soon as its groups are read, so the collector has little to do.
        """
        if len(self._plans) == 1 and self._plans[0][0].exact and self._plans[0][1] is None:
            search = self._plans[0][0].searcher(line_class)
            return [match.groups() if match else None for match in map(search, values)]
        plans = [(pattern, pattern.searcher(line_class), project) for pattern, project in self._plans]
        return [_first_match(value, plans) for value in values]

    def _column(self, capture: Capture, slots: list[pa.Array], problems: dict[int, str]) -> pa.Array:
        """One capture's values: empty captures null (unless kept), the first non-empty of repeats, converted."""
        parts = [slots[slot] for slot in capture.slots]
        if not self.keep_empty:
            parts = [_empty_as_null(part) for part in parts]
        column = parts[0] if len(parts) == 1 else pc.coalesce(*parts)
        if capture.kind == "string":
            return column
        return _convert(column, capture, problems)


def _lines_holding(lines: pa.Array, byte: int) -> np.ndarray | None:
    """Which lines hold an ASCII `byte` (a bool per line), None when none does: one vectorised pass over the text."""
    if not pa.types.is_large_string(lines.type):
        lines = lines.cast(pa.string())
    _, offsets_buffer, data = lines.buffers()
    if data is None:
        return None
    offsets = np.frombuffer(offsets_buffer, np.int64 if pa.types.is_large_string(lines.type) else np.int32)
    offsets = offsets[lines.offset : lines.offset + len(lines) + 1]
    hits = np.flatnonzero(np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]] == byte)
    if hits.size == 0:
        return None
    holding = np.zeros(len(lines), dtype=bool)
    holding[np.searchsorted(offsets, hits + offsets[0], side="right") - 1] = True
    return holding


def _first_match(value: str, plans: list[tuple[Compiled, Callable[[str], Any], Callable[[Row], Row] | None]]) -> Row | None:
    """The captures of the first pattern that matches `value` (each with the search for its class), in the row layout."""
    for pattern, search, project in plans:
        match = search(value)
        if match is not None:
            groups = pattern.groups(match)
            return groups if project is None else project(groups)
    return None


def _empty_as_null(column: pa.Array) -> pa.Array:
    empty = pc.equal(column, "")
    return pc.if_else(empty, pa.scalar(None, pa.string()), column) if pc.any(empty).as_py() else column


def _convert(column: pa.Array, capture: Capture, problems: dict[int, str]) -> pa.Array:
    """Text → int64/float64; a value that is not such a number (or overflows) fails its line."""
    syntax, target = (_INT if capture.kind == "int" else _FLOAT), _ARROW_KINDS[capture.kind]
    good = pc.fill_null(pc.match_substring_regex(column, syntax), False)
    text = pc.if_else(good, column, pa.scalar(None, pa.string()))
    if capture.kind == "int":
        text = pc.replace_substring_regex(text, r"^\+", "")
        try:
            converted = pc.cast(text, target)
        except pa.ArrowInvalid:  # an integer beyond int64
            converted = pa.array([_int64_or_none(value) for value in text.to_pylist()], target)
        fits = pc.is_valid(converted)
    else:
        converted = pc.cast(text, target)
        fits = pc.fill_null(pc.is_finite(converted), False)
    failed = pc.and_(pc.is_valid(column), pc.invert(pc.and_(good, fits)))
    if not pc.any(failed).as_py():
        return converted
    raw = column.to_pylist()
    article = "an int" if capture.kind == "int" else "a float"
    for index in pc.indices_nonzero(failed).to_pylist():
        problems.setdefault(index, f"{capture.name} {raw[index]!r} is not {article} (64-bit)")
    return pc.if_else(failed, pa.scalar(None, target), converted)


def _int64_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    number = int(value)
    return number if _INT64[0] <= number <= _INT64[1] else None


def _check_paths(captures: Sequence[Capture]) -> None:
    """No field may be both a value and the parent of another (`a` and `[a][b]`)."""
    for capture in captures:
        for other in captures:
            if len(other.path) > len(capture.path) and other.path[: len(capture.path)] == capture.path:
                raise ConfigError(f"'{capture.name}' is captured both as a value and as the parent of '{other.name}'")


def _tree(flat: Sequence[tuple[Capture, Any]]) -> dict[str, Any]:
    """A value per capture, nested by path: `[a][b]` and `[a][c]` under `a`."""
    tree: dict[str, Any] = {}
    for capture, value in flat:
        node = tree
        for part in capture.path[:-1]:
            node = node.setdefault(part, {})
        node[capture.path[-1]] = value
    return tree


def _nest(flat: list[tuple[Capture, pa.Array]]) -> list[tuple[str, pa.Array]]:
    """Captures as top-level columns: `[a][b]` and `[a][c]` become struct `a` (null where all its fields are)."""

    def build(node: dict[str, Any]) -> list[tuple[str, pa.Array]]:
        out = []
        for name, value in node.items():
            if isinstance(value, dict):
                children = build(value)
                arrays = [array for _, array in children]
                value = pa.StructArray.from_arrays(arrays, names=[child for child, _ in children], mask=_all_null(arrays))
            out.append((name, value))
        return out

    return build(_tree(flat))


def _all_null(arrays: list[pa.Array]) -> pa.Array:
    mask = pc.is_null(arrays[0])
    for array in arrays[1:]:
        mask = pc.and_(mask, pc.is_null(array))
    return mask

