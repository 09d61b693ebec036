"""`loglake test PIPELINE`: test cases declared in YAML, run in-process on the real stages (no broker, no Bytewax).

Cases live under a top-level `tests:` key of the pipeline file or of its sibling `<stem>.tests.yaml`. Each case
pushes records (or raw lines) into one node, runs every downstream stage in topological order with `run_stage`,
sends an end marker through `flush_stage`, and compares what reached each named node or port. Sources and sinks
are constructed but never opened, read or written.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loglake.pipelines.compile import CompiledPipeline, compile_pipeline, flush_stage, load_and_compile, run_stage
from loglake.pipelines.nodes import did_you_mean
from loglake.pipelines.spec import PortRef
from loglake.pipelines.yamlfile import LocatedYaml, load_yaml
from loglake.schemas.errors import SpecError, SpecIssue
from loglake.schemas.stage import StageOutput, end_marker

__all__ = [
    "CaseInput",
    "Expectation",
    "PipelineTestCase",
    "LoadedCase",
    "CaseResult",
    "tests_file_for",
    "load_cases",
    "run_case",
    "check_case",
    "run_tests_command",
]

TEST_SOURCE = "test"
"""The `source` column of records made from `lines:`."""
_END = end_marker(TEST_SOURCE)
_Path = tuple[str | int, ...]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class CaseInput(_Model):
    """What a case feeds in, and where.

    Example:
        input: {node: parse, lines: ['{"level": "WARNING", "msg": "disk"}']}
    """

    node: str | None = None
    """A source (records go to its output) or a stage (records go into it); default: the first source."""
    records: list[dict[str, Any]] | None = None
    """Records as field → value mappings."""
    lines: list[str] | None = None
    """Raw log lines; each becomes a record with `message`, `source: test` and `_line` (1-based)."""

    @model_validator(mode="after")
    def _one_kind(self) -> CaseInput:
        if (self.records is None) == (self.lines is None):
            raise ValueError("give exactly one of 'records' and 'lines'")
        return self


class Expectation(_Model):
    """What must have reached one node (a stage's or source's main output, a port, or a sink's input)."""

    node: str
    """`shape`, `parse.dropped`, or a sink name (what the sink would have written)."""
    records: list[dict[str, Any]] | None = None
    """Every record that arrived, in order; only the fields listed are compared, and null means null or absent."""
    absent: list[str] = Field(default_factory=list)
    """Fields that no arriving record may have (null counts as absent)."""
    count: int | None = Field(default=None, ge=0)
    """How many records arrived."""


class PipelineTestCase(_Model):
    """One test: an input and what must come out of it."""

    name: str
    """Shown in the report."""
    input: CaseInput
    """The records or lines fed in."""
    expect: list[Expectation] = Field(min_length=1)
    """Checks on what reached nodes."""


@dataclass(frozen=True)
class LoadedCase:
    """A validated case, where it is written, and its input as a batch."""

    case: PipelineTestCase
    source: LocatedYaml
    path: _Path
    start: str
    batch: pa.RecordBatch


@dataclass
class CaseResult:
    """A case's outcome: one block of report lines per failed expectation."""

    name: str
    failures: list[list[str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def tests_file_for(pipeline: Path) -> Path:
    """The sibling test file of a pipeline: `pipeline.yaml` → `pipeline.tests.yaml`."""
    return pipeline.with_name(f"{pipeline.stem}.tests{pipeline.suffix}")


def load_cases(compiled: CompiledPipeline) -> list[LoadedCase]:
    """Cases from the pipeline's `tests:` key and its sibling test file; SpecError lists every problem."""
    sources = [compiled.spec.source]
    sibling = tests_file_for(compiled.spec.file)
    if sibling.exists():
        sources.append(load_yaml(sibling.read_text(encoding="utf-8"), str(sibling)))
    issues: list[SpecIssue] = []
    cases = [case for located in sources for case in _cases_in(located, compiled, issues)]
    if not issues and not cases:
        issues.append(SpecIssue(f"no tests: write them in {sibling.name} or under a top-level 'tests:' key", file=str(compiled.spec.file)))
    if issues:
        raise SpecError(issues, issues[0].file)
    return cases


def _cases_in(located: LocatedYaml, compiled: CompiledPipeline, issues: list[SpecIssue]) -> list[LoadedCase]:
    data = located.data
    if located is not compiled.spec.source and not (isinstance(data, dict) and set(data) == {"tests"}):
        issues.append(located.issue("a test file must be a mapping with one key, 'tests' (a list of cases)", ()))
        return []
    raw = data.get("tests") if isinstance(data, dict) else None
    if raw is None:
        return []
    if not isinstance(raw, list):
        issues.append(located.issue("'tests' must be a list of cases", ("tests",)))
        return []
    loaded = [_load_case(located, compiled, item, ("tests", index), issues) for index, item in enumerate(raw)]
    return [case for case in loaded if case is not None]


def _load_case(located: LocatedYaml, compiled: CompiledPipeline, raw: Any, path: _Path, issues: list[SpecIssue]) -> LoadedCase | None:
    try:
        case = PipelineTestCase.model_validate(raw)
    except ValidationError as exc:
        issues.extend(_validation_issue(located, error, path) for error in exc.errors())
        return None
    found = len(issues)
    start = _check_input(located, compiled, case.input, path, issues)
    for index, expectation in enumerate(case.expect):
        _check_expectation(located, compiled, expectation.node, (*path, "expect", index, "node"), issues)
    batch = _input_batch(located, case.input, (*path, "input"), issues)
    if len(issues) > found or start is None or batch is None:
        return None
    return LoadedCase(case, located, path, start, batch)


def _validation_issue(located: LocatedYaml, error: Any, path: _Path) -> SpecIssue:
    loc = (*path, *(part for part in error["loc"] if not str(part).startswith("function-after")))
    if error["type"] == "extra_forbidden":
        return located.issue(f"unknown key '{loc[-1]}' in a test case", loc, at_key=True)
    if error["type"] == "missing":
        return located.issue(f"missing required key '{loc[-1]}' in a test case", loc[:-1])
    return located.issue(str(error["msg"]).removeprefix("Value error, "), loc)


def _check_input(located: LocatedYaml, compiled: CompiledPipeline, given: CaseInput, path: _Path, issues: list[SpecIssue]) -> str | None:
    """The node the input goes into: a source or a stage of the running graph."""
    graph = compiled.graph
    candidates = [node.name for node in graph.nodes if node.kind != "sink"]
    name = given.node if given.node is not None else next(node.name for node in graph.nodes if node.kind == "source")
    if name not in candidates:
        hint = did_you_mean(name, candidates, "sources and stages")
        issues.append(located.issue(f"input node '{name}' is no source or stage of pipeline {compiled.spec.name}{hint}", (*path, "input", "node")))
        return None
    return name


def _check_expectation(located: LocatedYaml, compiled: CompiledPipeline, text: str, path: _Path, issues: list[SpecIssue]) -> None:
    ref = PortRef.parse(text)
    names = [node.name for node in compiled.graph.nodes]
    node = compiled.spec.nodes.get(ref.node)
    if node is None or ref.node not in names:
        issues.append(located.issue(f"expected node '{ref.node}' is not in pipeline {compiled.spec.name}{did_you_mean(ref.node, names, 'nodes')}", path))
    elif ref.port is not None and (node.kind == "sink" or ref.port not in node.ports):
        valid = ", ".join(f"'{node.name}.{port}'" for port in node.ports) or "none"
        issues.append(located.issue(f"{node.type_name} node '{node.name}' has no output '{ref.port}' (its extra outputs: {valid})", path))


def _input_batch(located: LocatedYaml, given: CaseInput, path: _Path, issues: list[SpecIssue]) -> pa.RecordBatch | None:
    if given.lines is not None:
        count = len(given.lines)
        return pa.RecordBatch.from_pydict(
            {"message": pa.array(given.lines, pa.string()), "source": pa.array([TEST_SOURCE] * count, pa.string()), "_line": pa.array(range(1, count + 1), pa.int64())}
        )
    try:
        return pa.RecordBatch.from_pylist(given.records or [])
    except (pa.ArrowException, TypeError, ValueError) as exc:
        issues.append(located.issue(f"records cannot form one batch: {exc}", (*path, "records")))
        return None


def run_case(compiled: CompiledPipeline, loaded: LoadedCase) -> dict[PortRef, list[dict[str, Any]]]:
    """Push the case's input through a freshly built copy of the pipeline; records per node output (sinks: input)."""
    fresh = compile_pipeline(compiled.spec)
    graph = fresh.graph
    emitted: dict[PortRef, list[pa.RecordBatch]] = defaultdict(list)
    if fresh.spec.nodes[loaded.start].kind == "source":
        emitted[PortRef(loaded.start)].append(loaded.batch)
    for node in graph.nodes:
        if node.kind == "source":
            continue
        given = [loaded.batch] if node.name == loaded.start else [b for ref in graph.inputs_of(node.name) for b in emitted[ref]]
        if node.kind == "sink":
            emitted[PortRef(node.name)] = given
            continue
        instance, ctx = fresh.instances[node.name], fresh.contexts[node.name]
        outputs: list[StageOutput | None] = [run_stage(instance, ctx, batch) for batch in given]
        outputs.append(flush_stage(instance, ctx, _END))
        for output in filter(None, outputs):
            for port, batch in (("", output.main), *output.extra.items()):
                emitted[PortRef(node.name, port or None)].append(batch)
    return {ref: [row for batch in batches for row in batch.to_pylist()] for ref, batches in emitted.items()}


def check_case(loaded: LoadedCase, arrived: dict[PortRef, list[dict[str, Any]]]) -> CaseResult:
    """Compare every expectation of a case with what arrived."""
    result = CaseResult(loaded.case.name)
    for expectation in loaded.case.expect:
        records = arrived.get(PortRef.parse(expectation.node), [])
        problems = _problems(expectation, records)
        if problems:
            result.failures.append([f"{expectation.node}:", *problems])
    return result


def _problems(expectation: Expectation, records: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    if expectation.count is not None and expectation.count != len(records):
        out.append(f"expected {_count(expectation.count)}, got {_count(len(records))}")
    for index, record in enumerate(records, 1):
        present = [name for name in expectation.absent if record.get(name) is not None]
        out.extend(f"record {index} has {name} = {_json(record[name])}, which should be absent" for name in present)
    if expectation.records is not None and not _all_same(expectation.records, records):
        out.extend(_diff(expectation.records, records))
    return out


def _count(n: int) -> str:
    return f"{n} record{'s' if n != 1 else ''}"


def _all_same(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> bool:
    return len(expected) == len(actual) and all(_same(want, got) for want, got in zip(expected, actual))


def _same(expected: Any, actual: Any) -> bool:
    """Equal as a test reads it: listed fields only, null = absent, timestamps as UTC instants, bool ≠ int."""
    if expected is None or actual is None:
        return expected is actual
    if isinstance(actual, datetime):
        return _instant(expected) == _instant(actual)
    if isinstance(actual, date) and isinstance(expected, str):
        return actual.isoformat() == expected
    if isinstance(expected, dict) and isinstance(actual, dict):
        return all(_same(value, actual.get(key)) for key, value in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(_same(w, g) for w, g in zip(expected, actual))
    return isinstance(expected, bool) == isinstance(actual, bool) and bool(expected == actual)


def _instant(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _diff(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    """`-` expected / `+` actual JSON lines; actual records shown with the fields their expected one lists."""
    shown = [_projected(expected[i], record) if i < len(expected) else record for i, record in enumerate(actual)]
    lines = difflib.unified_diff([_json(r) for r in expected], [_json(r) for r in shown], "expected", "actual", lineterm="", n=len(expected) + len(actual))
    return [line for line in lines if not line.startswith("@@")]


def _projected(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """`actual` reduced to the expected fields; a matching value is written as the test wrote it."""
    out: dict[str, Any] = {}
    for key, want in expected.items():
        got = actual.get(key)
        if key in actual or want is None:
            out[key] = want if _same(want, got) else got
    return out


def _json(value: Any) -> str:
    return json.dumps(value, default=_plain, ensure_ascii=False)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        instant = _instant(value)
        return instant.isoformat().replace("+00:00", "Z") if instant else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def run_tests_command(args: argparse.Namespace) -> int:
    """`loglake test PIPELINE`: run every case, print failures with diffs and `N passed, M failed`; exit 1 on failure."""
    compiled = load_and_compile(args.pipeline)
    results = [check_case(loaded, run_case(compiled, loaded)) for loaded in load_cases(compiled)]
    for result in results:
        sys.stdout.write(_report(result))
    failed = sum(1 for result in results if not result.passed)
    sys.stdout.write(f"{len(results) - failed} passed, {failed} failed\n")
    return 1 if failed else 0


def _report(result: CaseResult) -> str:
    if result.passed:
        return f"ok    {result.name}\n"
    body = "".join(f"  {line}\n" if i == 0 else f"    {line}\n" for block in result.failures for i, line in enumerate(block))
    return f"FAIL  {result.name}\n{body}"
