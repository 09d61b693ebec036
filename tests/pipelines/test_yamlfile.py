"""The YAML loader: positions, interpolation, and the errors it reports with line and column."""

from __future__ import annotations

import pytest

from loglake.pipelines.yamlfile import load_yaml
from loglake.schemas.errors import SpecError

DOC = """\
sources:
  app:
    type: file
    paths: ["${LOG_DIR:-/var/log}/app.log"]
    batch_size: ${BATCH}
"""


@pytest.mark.parametrize(
    "environ, paths, batch",
    [
        ({"BATCH": "500"}, ["/var/log/app.log"], 500),
        ({"BATCH": "500", "LOG_DIR": "/data"}, ["/data/app.log"], 500),
        ({"BATCH": "500", "LOG_DIR": ""}, ["/var/log/app.log"], 500),
        ({"BATCH": "big"}, ["/var/log/app.log"], "big"),
    ],
    ids=["default-used", "variable-set", "empty-takes-default", "plain-scalar-stays-string"],
)
def test_interpolation_fills_variables_and_keeps_yaml_types(environ: dict[str, str], paths: list[str], batch: object) -> None:
    data = load_yaml(DOC, "p.yaml", environ).data
    assert data["sources"]["app"]["paths"] == paths
    assert data["sources"]["app"]["batch_size"] == batch


def test_unset_variable_without_default_is_located() -> None:
    with pytest.raises(SpecError) as caught:
        load_yaml(DOC, "p.yaml", {})
    (issue,) = caught.value.issues
    assert (issue.line, issue.column) == (5, 17)
    assert issue.path == ("sources", "app", "batch_size")
    assert "environment variable 'BATCH' is not set" in issue.message


def test_dollar_dollar_escapes_a_literal_dollar() -> None:
    assert load_yaml("a: price $$5\n", "p.yaml", {}).data == {"a": "price $5"}


def test_positions_point_at_values_and_keys() -> None:
    located = load_yaml(DOC, "p.yaml", {"BATCH": "1"})
    assert located.locate(("sources", "app", "type")) == (3, 11)
    assert located.locate(("sources", "app", "type"), at_key=True) == (3, 5)
    assert located.locate(("sources", "app", "paths", 0)) == (4, 13)
    assert located.locate(("sources", "app", "missing", "deeper")) == (2, 3)


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("a: [1, 2\nb: 3\n", 2, "expected ',' or ']'"),
        ("a:\n  b: 1\n c: 2\n", 3, "malformed YAML"),
        ("a: 1\na: 2\n", 2, "duplicate key 'a'"),
    ],
    ids=["unclosed-list", "bad-indent", "duplicate-key"],
)
def test_malformed_yaml_names_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_yaml(text, "p.yaml", {})
    issue = caught.value.issues[0]
    assert issue.line == line
    assert fragment in issue.message
    assert caught.value.render().startswith(f"p.yaml:{line}:")
