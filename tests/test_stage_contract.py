"""Every registered node type keeps the contract: documented fields, a docstring example that validates, empty batches."""

from __future__ import annotations

import inspect
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from loglake.pipelines.nodes import build_node, validate_config
from loglake.schemas.registry import Registration, load_all
from loglake.schemas.stage import NodeContext, StageOutput

REGISTRY = load_all()
ALL = [registration for kind in REGISTRY.values() for registration in kind.values()]


def _example(registration: Registration) -> tuple[str, dict[str, object]]:
    doc = inspect.cleandoc(registration.config.__doc__ or "")
    assert "Example:" in doc, f"{registration.type_name}: config docstring needs an `Example:` YAML block"
    parsed = yaml.safe_load(inspect.cleandoc(doc.split("Example:", 1)[1]))
    assert isinstance(parsed, dict) and len(parsed) == 1, "the example is one `name: {type: …, …}` node"
    ((name, raw),) = parsed.items()
    return name, raw


@pytest.mark.parametrize("registration", ALL, ids=lambda r: f"{r.kind}-{r.type_name}")
def test_docstring_example_validates(registration: Registration) -> None:
    name, raw = _example(registration)
    assert raw["type"] == registration.type_name
    config = validate_config(registration, name, raw)
    assert config.model_dump()["type"] == registration.type_name


@pytest.mark.parametrize("registration", ALL, ids=lambda r: f"{r.kind}-{r.type_name}")
def test_every_field_is_documented(registration: Registration) -> None:
    undocumented = [name for name, field in registration.config.model_fields.items() if name != "type" and not field.description]
    assert undocumented == []


CONSTRUCTIBLE_STAGES = [
    "apache_combined", "apache_common", "apache_error", "csv", "eval", "filter", "grok", "json", "kv",
    "multiline", "nginx_access", "nginx_error", "regex", "syslog",
    "timestamp", "redact", "sample", "rename", "cast", "drop_fields", "keep_fields", "dedupe", "user_agent", "route", "window",
]


@pytest.mark.parametrize("type_name", CONSTRUCTIBLE_STAGES)
def test_stage_passes_an_empty_batch_and_keeps_its_schema(type_name: str, tmp_path: Path) -> None:
    registration = REGISTRY["stage"][type_name]
    name, raw = _example(registration)
    stage = build_node("stage", name, raw, NodeContext(node=name, base_dir=tmp_path))
    empty = pa.RecordBatch.from_pydict({"message": pa.array([], pa.string()), "level": pa.array([], pa.string())})
    output = stage.process(empty)
    assert isinstance(output, StageOutput)
    assert output.main.num_rows == 0
    assert all(batch.num_rows == 0 for batch in output.extra.values())
    assert set(stage.outputs) >= {"dropped"}
