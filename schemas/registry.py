"""Which `type:` names exist, for sources, stages and sinks, and which config model and class build each.

A node module registers itself with a decorator (`@register_stage(FilterConfig)`). Built-ins are imported
lazily by type name; third-party packages register modules under the `loglake.stages` entry-point group.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, Literal, TypeVar

from loglake.schemas.config import NodeConfig, SinkConfig, SourceConfig, StageConfig, type_name_of

__all__ = ["Kind", "Registration", "register_stage", "register_source", "register_sink", "lookup", "type_names", "load_all"]

Kind = Literal["source", "stage", "sink"]
T = TypeVar("T")

BUILTINS: dict[Kind, dict[str, str]] = {
    "source": {
        "file": "loglake.operators.file",
        "stdin": "loglake.operators.stdin",
        "kafka": "loglake.operators.kafka",
        "lake": "loglake.operators.lake_source",
    },
    "stage": {
        "json": "loglake.parsers.json",
        "multiline": "loglake.parsers.multiline",
        "syslog": "loglake.parsers.syslog",
        "csv": "loglake.parsers.csv",
        "kv": "loglake.parsers.kv",
        "grok": "loglake.parsers.grok",
        "regex": "loglake.parsers.regex",
        "apache_combined": "loglake.parsers.presets",
        "apache_common": "loglake.parsers.presets",
        "apache_error": "loglake.parsers.presets",
        "nginx_access": "loglake.parsers.presets",
        "nginx_error": "loglake.parsers.presets",
        "filter": "loglake.operators.filter",
        "eval": "loglake.operators.eval",
        "python": "loglake.operators.python",
        "geoip": "loglake.operators.geoip",
        "user_agent": "loglake.operators.user_agent",
        "lookup": "loglake.operators.lookup",
        "dedupe": "loglake.operators.dedupe",
        "timestamp": "loglake.operators.timestamp",
        "redact": "loglake.operators.redact",
        "sample": "loglake.operators.sample",
        "rename": "loglake.operators.shorthands",
        "cast": "loglake.operators.shorthands",
        "drop_fields": "loglake.operators.shorthands",
        "keep_fields": "loglake.operators.shorthands",
        "route": "loglake.operators.route",
        "window": "loglake.operators.window",
    },
    "sink": {
        "parquet": "loglake.operators.parquet",
        "stdout": "loglake.operators.stdout",
        "metrics": "loglake.operators.metrics_sink",
        "alert": "loglake.operators.alert",
        "kafka": "loglake.operators.kafka",
    },
}
"""Built-in type names and the module that registers each."""

ENTRY_POINT_GROUP = "loglake.stages"


@dataclass(frozen=True)
class Registration:
    """A type name tied to its config model and the class built from it (`cls(config, ctx)`)."""

    kind: Kind
    type_name: str
    config: type[NodeConfig]
    factory: Callable[..., Any]


_registry: dict[Kind, dict[str, Registration]] = {"source": {}, "stage": {}, "sink": {}}
_plugins_loaded = False


def _register(kind: Kind, config: type[NodeConfig]) -> Callable[[type[T]], type[T]]:
    def decorate(cls: type[T]) -> type[T]:
        name = type_name_of(config)
        _registry[kind][name] = Registration(kind, name, config, cls)
        return cls

    return decorate


def register_stage(config: type[StageConfig]) -> Callable[[type[T]], type[T]]:
    """Class decorator: `config`'s `type` names a stage built by the decorated class."""
    return _register("stage", config)


def register_source(config: type[SourceConfig]) -> Callable[[type[T]], type[T]]:
    """Class decorator: `config`'s `type` names a source built by the decorated class."""
    return _register("source", config)


def register_sink(config: type[SinkConfig]) -> Callable[[type[T]], type[T]]:
    """Class decorator: `config`'s `type` names a sink built by the decorated class."""
    return _register("sink", config)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()


def lookup(kind: Kind, type_name: str) -> Registration | None:
    """The registration for a type name, importing its built-in module on first use; None if unknown."""
    found = _registry[kind].get(type_name)
    if found is not None:
        return found
    module = BUILTINS[kind].get(type_name)
    if module is not None:
        importlib.import_module(module)
    else:
        _load_plugins()
    return _registry[kind].get(type_name)


def type_names(kind: Kind) -> list[str]:
    """Every known type name of a kind (built-ins and plugins), sorted."""
    _load_plugins()
    return sorted(set(BUILTINS[kind]) | set(_registry[kind]))


def load_all() -> dict[Kind, dict[str, Registration]]:
    """Import every built-in and plugin; the full registry (for the JSON Schema and the reference)."""
    for kind in BUILTINS:
        for name in type_names(kind):
            lookup(kind, name)
    return {kind: dict(sorted(regs.items())) for kind, regs in _registry.items()}
