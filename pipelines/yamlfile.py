"""Load pipeline YAML keeping every value's line and column, with `${VAR}` / `${VAR:-default}` interpolation."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from loglake.schemas.errors import SpecError, SpecIssue

__all__ = ["LocatedYaml", "load_yaml"]

Path_ = tuple[str | int, ...]
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}|\$\$")


@dataclass
class LocatedYaml:
    """Plain Python data from a YAML document and the (line, column) of every key path in it (1-based)."""

    data: Any
    file: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path_, at_key: bool = False) -> tuple[int | None, int | None]:
        """Line and column of `path` (its key with `at_key`), or of its nearest located ancestor."""
        if at_key and path in self.key_positions:
            return self.key_positions[path]
        for end in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:end]))
            if found is not None:
                return found
        return None, None

    def issue(
        self, message: str, path: Path_, node: str | None = None, node_type: str | None = None, at_key: bool = False
    ) -> SpecIssue:
        """A SpecIssue located at `path` in this file (at its key rather than its value with `at_key`)."""
        line, column = self.locate(path, at_key)
        return SpecIssue(
            message, path=path, node=node, node_type=node_type, file=self.file, line=line, column=column, about_key=at_key
        )


class _Builder:
    """Turns a composed YAML node tree into Python data, recording positions and interpolating variables."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.result = LocatedYaml(None, file)
        self.environ = environ
        self.issues: list[SpecIssue] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.result.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._issue("YAML merge keys (<<) are not supported; write the keys out", key_node, path)
                continue
            key = self._constructor.construct_object(key_node)
            if not isinstance(key, (str, int)):
                self._issue(f"keys must be strings, not {type(key).__name__}", key_node, path)
                continue
            key = str(key)
            if key in out:
                self._issue(f"duplicate key '{key}' (the earlier one would be ignored)", key_node, (*path, key))
                continue
            self.result.key_positions[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(value_node, yaml.ScalarNode):
                # Collections are located by their key; scalars by their value (set in build()).
                self.result.positions[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = self.build(value_node, (*path, key))
        return out

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        value = self._constructor.construct_object(node)
        if not isinstance(value, str) or "$" not in value:
            return value
        substituted = self._interpolate(value, node, path)
        if node.style is None and substituted != value:
            # A plain scalar like `${PORT}` takes the YAML type of what it became (9092 is an int).
            try:
                return yaml.safe_load(substituted) if substituted.strip() else substituted
            except yaml.YAMLError:
                return substituted
        return substituted

    def _interpolate(self, value: str, node: yaml.Node, path: Path_) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            found = self.environ.get(name)
            if found is not None and (found != "" or default is None):
                return found
            if default is not None:
                return default
            self._issue(f"environment variable '{name}' is not set (write ${{{name}:-default}} for a default)", node, path)
            return match.group(0)

        return _VARIABLE.sub(replace, value)

    def _issue(self, message: str, node: yaml.Node, path: Path_) -> None:
        self.issues.append(
            SpecIssue(message, path=path, file=self.result.file, line=node.start_mark.line + 1, column=node.start_mark.column + 1)
        )


def load_yaml(text: str, file: str, environ: Mapping[str, str] | None = None) -> LocatedYaml:
    """Parse one YAML document; raise SpecError (with line and column) for malformed YAML."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = " ".join(part for part in (exc.context, exc.problem) if part)
        raise SpecError(
            [SpecIssue(f"malformed YAML: {reason}", file=file, line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None)],
            file,
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue(f"malformed YAML: {exc}", file=file)], file) from None
    builder = _Builder(file, os.environ if environ is None else environ)
    builder.result.data = builder.build(root, ()) if root is not None else None
    if builder.issues:
        raise SpecError(builder.issues, file)
    return builder.result
