"""The committed JSON Schema and README reference are what the models generate, and the schema accepts the examples."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from loglake.pipelines.yamlfile import load_yaml
from loglake.pipelines.reference import END_MARKER, START_MARKER, render_reference
from loglake.schemas.pipeline import render_json_schema

REPO = Path(__file__).resolve().parents[2]


def test_committed_schema_is_current() -> None:
    committed = (REPO / "schemas" / "pipeline.schema.json").read_text(encoding="utf-8")
    assert committed == render_json_schema(), "run `make schema` and commit schemas/pipeline.schema.json"


def test_readme_reference_is_current() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split(START_MARKER, 1)[1].split(END_MARKER, 1)[0]
    assert section.strip() == render_reference().strip(), "run `make reference` and commit README.md"


@pytest.mark.parametrize("example", sorted((REPO / "examples").glob("*/pipeline.yaml")), ids=lambda p: p.parent.name)
def test_examples_validate_against_the_schema(example: Path) -> None:
    """Each example, with its `${VAR:-default}`s at their defaults (as the loader reads it with no variables set)."""
    schema = json.loads(render_json_schema())
    jsonschema.validate(load_yaml(example.read_text(), str(example), environ={}).data, schema)


def test_schema_rejects_a_misspelt_key() -> None:
    schema = json.loads(render_json_schema())
    doc = {"pipeline": "p", "sources": {"a": {"type": "file", "paths": ["x"], "follow": True}}, "sinks": {"o": {"type": "stdout"}}}
    jsonschema.validate(doc, schema)
    doc["sources"]["a"]["folow"] = doc["sources"]["a"].pop("follow")  # type: ignore[index]
    errors = [e for error in jsonschema.Draft202012Validator(schema).iter_errors(doc) for e in (error, *error.context)]
    assert any("'folow' was unexpected" in e.message for e in errors)
