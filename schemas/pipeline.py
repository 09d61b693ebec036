"""The pipeline file's top level, and the JSON Schema of the whole YAML generated from the registered node models."""

from __future__ import annotations

import json
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from loglake.schemas.registry import load_all

__all__ = ["PipelineHeader", "NODE_NAME_PATTERN", "SECTIONS", "pipeline_json_schema", "render_json_schema"]

NODE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
"""Node names: letters, digits, `_` and `-`; no dots (a dot separates a node from its output port)."""

SECTIONS = {"sources": "source", "stages": "stage", "sinks": "sink"}
"""Top-level sections and the kind of node each holds, in declaration order."""


class PipelineHeader(BaseModel):
    """The keys of a pipeline file besides its nodes.

    Example:
        pipeline: app-json
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    pipeline: str = Field(pattern=NODE_NAME_PATTERN)
    """The pipeline's name (letters, digits, `_`, `-`); names its checkpoints and metrics."""
    description: str | None = None
    """Free text shown by `loglake validate`."""
    lake: str = "lake"
    """Folder of the Parquet lake (relative to this file); `parquet` sinks write datasets under it."""
    sources: dict[str, Any]
    """Where records come from: name → source node."""
    stages: dict[str, Any] = Field(default_factory=dict)
    """What happens to them, in order: name → stage node."""
    sinks: dict[str, Any]
    """Where they go: name → sink node."""
    dead_letter: dict[str, Any] | None = None
    """The sink for failed records that no node consumes (`<node>.dropped`); default: the `dead_letter` dataset in the lake."""
    tests: list[dict[str, Any]] | None = None
    """Test cases `loglake test` runs in-process (or put them in `<pipeline stem>.tests.yaml`)."""


def _union(kind: str) -> Any:
    models = [registration.config for registration in load_all()[kind].values()]  # type: ignore[index]
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator="type")]


def pipeline_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a pipeline file, for editors and CI linting."""
    source, stage, sink = _union("source"), _union("stage"), _union("sink")
    header_fields: dict[str, Any] = {
        name: (field.annotation, field) for name, field in PipelineHeader.model_fields.items()
    }
    header_fields.update(
        sources=(dict[str, source], Field(min_length=1, description=PipelineHeader.model_fields["sources"].description)),  # type: ignore[valid-type]
        stages=(dict[str, stage], Field(default_factory=dict, description=PipelineHeader.model_fields["stages"].description)),  # type: ignore[valid-type]
        sinks=(dict[str, sink], Field(min_length=1, description=PipelineHeader.model_fields["sinks"].description)),  # type: ignore[valid-type]
        dead_letter=(sink | None, Field(default=None, description=PipelineHeader.model_fields["dead_letter"].description)),
    )
    model = create_model("Pipeline", __config__=ConfigDict(extra="forbid"), __doc__=PipelineHeader.__doc__, **header_fields)
    schema: dict[str, Any] = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "loglake pipeline"
    return schema


def render_json_schema() -> str:
    """The JSON Schema as the committed file holds it (sorted keys, 2-space indent, final newline)."""
    return json.dumps(pipeline_json_schema(), indent=2, sort_keys=True) + "\n"
