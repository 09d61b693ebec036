"""The `python` stage: user functions imported from the pipeline folder, in batch and records mode."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from loglake.schemas.errors import SpecError
from tests.support import batch_of, build_stage

UDF = '''
import pyarrow as pa
import pyarrow.compute as pc

TEAMS = {"checkout": "payments", "cart": "web"}
NOT_A_FUNCTION = 42


def add_team(batch):
    teams = [TEAMS.get(s) for s in batch.column("service").to_pylist()]
    return batch.append_column("team", pa.array(teams, pa.string()))


def errors_only_table(batch):
    return pa.Table.from_batches([batch]).filter(pc.equal(batch.column("level"), "error"))


def as_dicts(batch):
    return [{"service": s, "len": len(s)} for s in batch.column("service").to_pylist()]


def nothing(batch):
    return None


def explode(batch):
    raise RuntimeError("lookup service down")


def wrong_type(batch):
    return 42


def tag(record):
    if record["level"] == "debug":
        return None
    if record["service"] == "boom":
        raise KeyError("team")
    return {**record, "team": TEAMS.get(record["service"], "unknown")}


def split_words(record):
    return [{"word": w} for w in record["message"].split()]


class Enricher:
    @staticmethod
    def upper(record):
        return {"service": record["service"].upper()}


def two_args(record, extra):
    return record
'''

LOGS = batch_of(
    service=["checkout", "cart", "boom", "search"],
    level=["error", "debug", "info", "error"],
    message=["payment declined", "cache miss", "exploded", "slow query"],
)


@pytest.fixture
def pipeline_dir(tmp_path: Path) -> Path:
    """A folder holding a pretend pipeline's Python module, as the pipeline file's folder would."""
    (tmp_path / "udf.py").write_text(textwrap.dedent(UDF))
    return tmp_path


def _stage(pipeline_dir: Path, function: str, mode: str = "batch", on_error: str = "route") -> object:
    snippet = f"{{type: python, function: '{function}', mode: {mode}, on_error: {on_error}}}"
    return build_stage(snippet, name="enrich", base_dir=pipeline_dir)


def test_batch_mode_returns_the_functions_batch(pipeline_dir: Path) -> None:
    out = _stage(pipeline_dir, "udf:add_team").process(LOGS)  # type: ignore[attr-defined]
    assert out.main.column("team").to_pylist() == ["payments", "web", None, None]
    assert out.main.schema.names == ["service", "level", "message", "team"]


@pytest.mark.parametrize(
    "function, services",
    [("udf:errors_only_table", ["checkout", "search"]), ("udf:as_dicts", ["checkout", "cart", "boom", "search"]), ("udf:nothing", [])],
    ids=["table", "list-of-dicts", "none-is-empty"],
)
def test_batch_mode_accepts_tables_dicts_and_none(pipeline_dir: Path, function: str, services: list[str]) -> None:
    out = _stage(pipeline_dir, function).process(LOGS)  # type: ignore[attr-defined]
    assert out.main.column("service").to_pylist() == services
    assert out.extra == {}


def test_batch_mode_dicts_keep_input_types(pipeline_dir: Path) -> None:
    out = _stage(pipeline_dir, "udf:as_dicts").process(LOGS)  # type: ignore[attr-defined]
    assert out.main.column("len").to_pylist() == [8, 4, 4, 6]
    assert out.main.schema.field("service").type == pa.string()


@pytest.mark.parametrize(
    "function, error",
    [("udf:explode", "RuntimeError: lookup service down"), ("udf:wrong_type", "TypeError: returned int; return a RecordBatch")],
    ids=["exception", "wrong-return-type"],
)
def test_batch_mode_failure_sends_the_whole_batch_to_dropped(pipeline_dir: Path, function: str, error: str) -> None:
    out = _stage(pipeline_dir, function).process(LOGS)  # type: ignore[attr-defined]
    assert out.main.num_rows == 0
    dropped = out.extra["dropped"]
    assert dropped.column("service").to_pylist() == LOGS.column("service").to_pylist()
    assert all(message.startswith(error) for message in dropped.column("_error").to_pylist())
    assert set(dropped.column("_error_node").to_pylist()) == {"enrich"}


def test_records_mode_fails_only_the_raising_record_and_drops_none(pipeline_dir: Path) -> None:
    out = _stage(pipeline_dir, "udf:tag", mode="records").process(LOGS)  # type: ignore[attr-defined]
    assert out.main.column("service").to_pylist() == ["checkout", "search"]
    assert out.main.column("team").to_pylist() == ["payments", "unknown"]
    dropped = out.extra["dropped"]
    assert dropped.column("service").to_pylist() == ["boom"]
    assert dropped.column("_error").to_pylist() == ["KeyError: 'team'"]


def test_records_mode_list_fans_out_in_order(pipeline_dir: Path) -> None:
    out = _stage(pipeline_dir, "udf:split_words", mode="records").process(LOGS.slice(0, 2))  # type: ignore[attr-defined]
    assert out.main.column("word").to_pylist() == ["payment", "declined", "cache", "miss"]


def test_records_mode_dotted_attribute(pipeline_dir: Path) -> None:
    out = _stage(pipeline_dir, "udf:Enricher.upper", mode="records").process(LOGS.slice(0, 1))  # type: ignore[attr-defined]
    assert out.main.to_pylist() == [{"service": "CHECKOUT"}]


def test_records_mode_keep_puts_failed_record_after_the_others(pipeline_dir: Path) -> None:
    out = _stage(pipeline_dir, "udf:tag", mode="records", on_error="keep").process(LOGS)  # type: ignore[attr-defined]
    assert out.main.column("service").to_pylist() == ["checkout", "search", "boom"]
    assert out.main.column("team").to_pylist() == ["payments", "unknown", None]
    assert out.main.column("_error").to_pylist() == [None, None, "KeyError: 'team'"]


def test_module_is_reloaded_from_a_different_pipeline_folder(tmp_path: Path) -> None:
    for version in ("v1", "v2"):
        folder = tmp_path / version
        folder.mkdir()
        (folder / "udf.py").write_text(f"def which(batch):\n    return [{{'version': '{version}'}}]\n")
        out = build_stage("{type: python, function: 'udf:which'}", base_dir=folder).process(LOGS)
        assert out.main.column("version").to_pylist() == [version]


def test_module_from_the_python_path(pipeline_dir: Path) -> None:
    stage = build_stage("{type: python, function: 'copy:copy', mode: records}", base_dir=pipeline_dir)
    assert stage.process(LOGS).main.to_pylist() == LOGS.to_pylist()


@pytest.mark.parametrize(
    "function, reason",
    [
        ("nosuchmodule:f", "module 'nosuchmodule' not found in"),
        ("udf:add_teem", "'udf' has no attribute 'add_teem'; did you mean 'add_team'?"),
        ("udf:NOT_A_FUNCTION", "'udf:NOT_A_FUNCTION' is a int, not a function"),
        ("udf:two_args", "cannot be called with one argument"),
        ("broken:f", "importing 'broken' failed: ZeroDivisionError: division by zero"),
    ],
    ids=["module-missing", "attribute-missing", "not-callable", "wrong-arity", "import-raises"],
)
def test_unusable_function_is_a_spec_error_on_function(pipeline_dir: Path, function: str, reason: str) -> None:
    (pipeline_dir / "broken.py").write_text("RATIO = 1 / 0\n")
    with pytest.raises(SpecError) as caught:
        _stage(pipeline_dir, function)
    [issue] = caught.value.issues
    assert issue.path == ("function",)
    assert reason in issue.message


@pytest.mark.parametrize("function", ["udf", "udf:", ":f", "udf add_team"], ids=["no-colon", "no-name", "no-module", "space"])
def test_function_must_be_module_colon_name(pipeline_dir: Path, function: str) -> None:
    with pytest.raises(SpecError) as caught:
        _stage(pipeline_dir, function)
    assert caught.value.issues[0].path == ("function",)
    assert "is not 'module:function'" in caught.value.issues[0].message
