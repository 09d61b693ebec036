"""Building one node (source, stage or sink) from its raw YAML mapping: type lookup, config validation, construction."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import ValidationError

from loglake.schemas.config import NodeConfig
from loglake.schemas.errors import ConfigError, SpecError, SpecIssue
from loglake.schemas.registry import Kind, Registration, lookup, type_names
from loglake.schemas.stage import NodeContext

__all__ = ["resolve_type", "validate_config", "build_node", "did_you_mean", "config_path"]


def config_path(field: str | None) -> tuple[str | int, ...]:
    """A ConfigError's dotted field (`patterns.1`, `fields.level`) as a YAML path; digit parts are list indices."""
    if not field:
        return ()
    return tuple(int(part) if part.isdigit() else part for part in field.split("."))


def did_you_mean(word: str, choices: list[str], what: str = "types") -> str:
    """`; did you mean 'x'?` when a close match exists, else `; valid <what>: a, b, … N more`."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    shown = ", ".join(choices[:8]) + (f", … {len(choices) - 8} more" if len(choices) > 8 else "")
    return f"; valid {what}: {shown}"


def resolve_type(kind: Kind, name: str, raw: Any) -> Registration:
    """The registration for a node's `type`, or a SpecError naming what is wrong with it."""
    if not isinstance(raw, dict):
        raise SpecError([SpecIssue(f"a {kind} must be a mapping with a 'type' key, not {type(raw).__name__}", node=name)])
    type_name = raw.get("type")
    if type_name is None:
        raise SpecError([SpecIssue(f"missing 'type' (one of: {', '.join(type_names(kind))})", path=(), node=name)])
    if not isinstance(type_name, str):
        raise SpecError([SpecIssue(f"'type' must be a string, not {type(type_name).__name__}", path=("type",), node=name)])
    registration = lookup(kind, type_name)
    if registration is None:
        hint = did_you_mean(type_name, type_names(kind))
        raise SpecError([SpecIssue(f"unknown {kind} type '{type_name}'{hint}", path=("type",), node=name)])
    return registration


def _message_for(error: dict[str, Any], config: type[NodeConfig]) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = [f.alias or k for k, f in config.model_fields.items() if k != "type"] if len(loc) == 1 else []
        hint = did_you_mean(key, known, "keys") if known else ""
        return f"unknown key '{key}'{hint}"
    if kind == "missing":
        return f"missing required key '{loc[-1]}'"
    if kind == "enum":
        return f"{error['msg'].lower()} (got {error.get('input')!r})"
    message = str(error["msg"])
    return message[len("Value error, "):] if message.startswith("Value error, ") else message


def validate_config(registration: Registration, name: str, raw: dict[str, Any]) -> NodeConfig:
    """The node's config model, or a SpecError with one issue per pydantic error (paths relative to the node)."""
    try:
        return registration.config.model_validate(raw)
    except ValidationError as exc:
        issues = [
            SpecIssue(
                _message_for(error, registration.config),  # type: ignore[arg-type]
                path=tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))),
                node=name,
                node_type=registration.type_name,
                about_key=error["type"] == "extra_forbidden",
            )
            for error in exc.errors()
        ]
        raise SpecError(issues) from None


def build_node(kind: Kind, name: str, raw: Any, ctx: NodeContext) -> Any:
    """Validate and construct a node; every failure is a SpecError with node-relative paths."""
    registration = resolve_type(kind, name, raw)
    config = validate_config(registration, name, raw)
    try:
        return registration.factory(config, ctx)
    except ConfigError as exc:
        path = config_path(exc.field)
        raise SpecError([SpecIssue(exc.message, path=path, node=name, node_type=registration.type_name)]) from None
