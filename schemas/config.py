"""Base config models for sources, stages and sinks: frozen, unknown keys rejected, one docstring per field."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ConfigPart", "NodeConfig", "SourceConfig", "StageConfig", "SinkConfig", "OnError", "type_name_of", "check_group_by"]


class OnError(str, Enum):
    """What a stage does with a record it cannot process."""

    route = "route"
    """Send it to `<node>.dropped` with `_error` and `_error_node` columns (the default)."""
    keep = "keep"
    """Pass it on to the main output with `_error` and `_error_node` set."""
    discard = "discard"
    """Count it and drop it."""


class NodeConfig(BaseModel):
    """Fields every node has. Subclasses add `type: Literal["name"]` and their own options."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    kind: ClassVar[str] = "node"


class ConfigPart(BaseModel):
    """A nested mapping inside a node's config: frozen, unknown keys rejected, one docstring per field."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class SourceConfig(NodeConfig):
    """A node that reads records from outside (files, stdin, Kafka)."""

    kind: ClassVar[str] = "source"


class StageConfig(NodeConfig):
    """A node that transforms batches of records."""

    kind: ClassVar[str] = "stage"

    inputs: list[str] | None = Field(default=None, min_length=1)
    """Nodes (or `node.output` ports) this one reads; default: the node declared just before it."""
    on_error: OnError = OnError.route
    """What to do with a record this stage cannot process: `route` it to `<node>.dropped`, `keep` it with `_error` set, or `discard` it (counted)."""


class SinkConfig(NodeConfig):
    """A node that writes records out (Parquet, stdout, Kafka)."""

    kind: ClassVar[str] = "sink"

    inputs: list[str] | None = Field(default=None, min_length=1)
    """Nodes (or `node.output` ports) this sink writes; default: the node declared just before it."""


def type_name_of(config_cls: type[NodeConfig]) -> str:
    """The `type:` value a config class declares through its `Literal` annotation."""
    field = config_cls.model_fields.get("type")
    args: tuple[Any, ...] = getattr(field.annotation, "__args__", ()) if field is not None else ()
    if len(args) != 1 or not isinstance(args[0], str):
        raise TypeError(f"{config_cls.__name__} must declare `type: Literal['<name>']`")
    return args[0]


def check_group_by(names: list[str], reserved: Sequence[str], clash: str) -> list[str]:
    """`names` (a `group_by` list) if none is empty, repeated or reserved; else ValueError.

    `clash` formats the message for reserved names: `{names}` is replaced by those given.
    """
    if any(not name for name in names):
        raise ValueError("group_by names must not be empty")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"group_by names repeat: {', '.join(repeated)}")
    clashing = [name for name in names if name in reserved]
    if clashing:
        raise ValueError(clash.format(names=", ".join(clashing)))
    return names
