"""Field propagation: what each node may output, and a window reading a field that cannot reach it, found before a run."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loglake.pipelines.cli import main
from loglake.pipelines.compile import load_and_compile
from loglake.pipelines.fields import port_fields
from loglake.pipelines.spec import PortRef
from tests.operators.mmdb_fixtures import write_city_db
from tests.support import APACHE_LOG, build_source, build_stage, compile_issues

REPO = Path(__file__).resolve().parents[2]
LINES = frozenset({"message", "source", "_line", "_truncated"})
ERRORS = frozenset({"_error", "_error_node"})
COMBINED = frozenset({"clientip", "ident", "auth", "timestamp", "verb", "request", "httpversion", "rawrequest", "response", "bytes", "referrer", "agent"})

WINDOW = """
per_minute:
  type: window
  tumbling: 1m
  group_by: [response]
  aggregate:
    requests: count()
    total: sum(bytes)
"""


def _access(write_pipeline: Callable[[str], Path], stages: str, sink: str = "{type: stdout}") -> Path:
    """A pipeline file: the real access log through `apache_combined` (stage `parse`, lines 1-5), then `stages`, then `out`."""
    body = textwrap.indent(textwrap.dedent(stages).strip("\n"), "  ")
    head = f'pipeline: access\nsources:\n  access: {{type: file, paths: ["{APACHE_LOG}"]}}\nstages:\n  parse: {{type: apache_combined}}\n'
    return write_pipeline(f"{head}{body}\nsinks:\n  out: {sink}\n")


def test_validate_reports_an_aggregate_over_a_missing_field_at_its_line(
    write_pipeline: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _access(write_pipeline, WINDOW.replace("sum(bytes)", "sum(byts)"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"{path}:12:14  stages.per_minute.aggregate.total  no record reaching this window has a field 'byts'; "
        "did you mean 'bytes'? (node 'per_minute', type window)"
    )
    assert err[-1] == f"1 problem in {path}; nothing was started."


def test_run_refuses_a_group_by_typo_before_reading_anything(
    write_pipeline: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _access(write_pipeline, WINDOW.replace("group_by: [response]", "group_by: [verb, respons]"))
    assert main(["run", str(path)]) == 2
    captured = capsys.readouterr()
    assert "stages.per_minute.group_by[1]  no record reaching this window has a field 'respons'; did you mean 'response'?" in captured.err
    assert captured.out == "" and not (tmp_path / "lake").exists()


def test_every_field_a_window_reads_is_checked_and_a_far_miss_lists_what_reaches_it(write_pipeline: Callable[[str], Path]) -> None:
    stages = WINDOW.replace("group_by: [response]", "group_by: [zzz.browser_family]").replace("tumbling: 1m", "tumbling: 1m\n  time_field: timestmp")
    issues = compile_issues(_access(write_pipeline, stages))
    assert [(where, line) for where, line, _ in issues] == [("stages.per_minute.time_field", 9), ("stages.per_minute.group_by[0]", 10)]
    assert issues[0][2].endswith("'timestmp'; did you mean 'timestamp'?")
    assert issues[1][2].startswith("no record reaching this window has a field 'zzz.browser_family'; the fields that reach it: agent, auth, ")
    assert issues[1][2].endswith(", … 8 more")


def test_a_window_after_a_json_stage_is_not_checked_and_runs(
    write_pipeline: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [{"timestamp": f"2024-01-02T03:04:0{i}Z", "level": "info", "bytes": 10 * i} for i in range(1, 4)]
    (tmp_path / "app.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    path = write_pipeline("""
        pipeline: app
        sources:
          app: {type: file, paths: [app.jsonl]}
        stages:
          parse: {type: json}
          per_minute: {type: window, tumbling: 1m, group_by: [level], aggregate: {total: sum(bytes)}}
        sinks:
          out: {type: stdout}
    """)
    assert compile_issues(path) == []
    assert main(["run", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(row["level"], row["total"]) for row in rows] == [("info", 60)]


@pytest.mark.parametrize(
    "aggregate, problem",
    [
        ("{kb: sum(kb), clients: count_distinct(client), browsers: count_distinct(ua.browser_family)}", None),
        ("{clients: count_distinct(clientip)}", ("stages.per_minute.aggregate.clients", "field 'clientip'; did you mean 'client'?")),
        ("{agents: count_distinct(agent)}", ("stages.per_minute.aggregate.agents", "field 'agent';")),
    ],
    ids=["computed-renamed-and-struct-fields-pass", "renamed-away", "removed"],
)
def test_fields_through_eval_rename_and_user_agent(write_pipeline: Callable[[str], Path], aggregate: str, problem: tuple[str, str] | None) -> None:
    path = _access(write_pipeline, f"""
        ua: {{type: user_agent, field: agent, target: ua}}
        sizes: {{type: eval, fields: {{kb: bytes / 1024}}, remove: [agent]}}
        names: {{type: rename, fields: {{clientip: client}}}}
        per_minute: {{type: window, tumbling: 1m, aggregate: {aggregate}}}
    """)
    found = compile_issues(path)
    assert [where for where, _, _ in found] == ([problem[0]] if problem else [])
    assert all(problem is not None and problem[1] in message for _, _, message in found)


def test_ports_carry_what_the_engine_sends_on_them(write_pipeline: Callable[[str], Path]) -> None:
    path = _access(write_pipeline, """
        split: {type: route, on_error: keep, routes: {errors: "response >= 500"}}
        failed: {type: window, inputs: [parse.dropped], tumbling: 1m, time: processing, group_by: [_error], aggregate: {n: count()}}
        minutes: {type: window, inputs: [split.errors], tumbling: 1m, aggregate: {n: count()}}
        both: {type: filter, inputs: [parse, failed], condition: "true"}
        opaque: {type: json, inputs: [minutes.late]}
        mixed: {type: filter, inputs: [both, opaque], condition: "true"}
    """, sink="{type: stdout, inputs: [mixed]}")
    compiled = load_and_compile(path)
    fields = port_fields(compiled.graph, compiled.instances)
    parsed = LINES | COMBINED
    assert fields[PortRef("parse")] == parsed
    assert fields[PortRef("parse", "dropped")] == LINES | ERRORS
    assert fields[PortRef("split")] == parsed | ERRORS  # on_error: keep
    assert fields[PortRef("split", "errors")] == fields[PortRef("split", "_unmatched")] == parsed
    assert fields[PortRef("failed")] == {"window_start", "window_end", "timestamp", "_error", "n"}
    assert fields[PortRef("minutes", "late")] == parsed
    assert fields[PortRef("both")] == parsed | {"window_start", "window_end", "_error", "n"}
    assert fields[PortRef("opaque")] is None and fields[PortRef("mixed")] is None


@pytest.mark.parametrize(
    "snippet, upstream, expected",
    [
        ("{type: grok, patterns: ['%{IP:client} %{WORD:[http][verb]}']}", {"message"}, {"message", "client", "http"}),
        ("{type: grok, target: g, patterns: ['%{IP:client}']}", {"message"}, {"message", "g"}),
        ("{type: apache_error, target: e}", {"message"}, {"message", "e", "timestamp", "level"}),
        ("{type: regex, pattern: '(?P<a>x)(?P<b>y)'}", None, None),
        ("{type: syslog, target: s}", {"message"}, {"message", "s"}),
        ("{type: csv, columns: [a, b]}", {"message"}, None),
        ("{type: kv, prefix: kv_, include_keys: [src, dst]}", {"message"}, {"message", "kv_src", "kv_dst"}),
        ("{type: kv}", {"message"}, None),
        ("{type: json}", {"message"}, None),
        ("{type: json, target: j}", {"message"}, {"message", "j"}),
        ("{type: eval, fields: {a: '1', b: '2'}, rename: {a: c, m: a}, remove: [x]}", {"m", "x"}, {"a", "b", "c"}),
        ("{type: keep_fields, fields: [a, zzz]}", {"a", "b", "timestamp", "_line"}, {"a", "timestamp", "_line"}),
        ("{type: keep_fields, fields: [a]}", None, None),
        ("{type: drop_fields, fields: [a, zzz]}", {"a", "b"}, {"b"}),
        ("{type: timestamp, field: t, formats: [ISO8601], target: when}", {"t"}, {"t", "when"}),
        ("{type: geoip, field: ip, database: CITY_DB}", {"ip"}, {"ip", "geo"}),
        ("{type: window, tumbling: 1m, group_by: [ua.os_family], aggregate: {p95: 'quantile(bytes, 0.95)'}}", None,
         {"window_start", "window_end", "timestamp", "ua.os_family", "p95"}),
    ],
    ids=["grok", "grok-target", "preset-target-keeps-time-and-level", "unknown-stays-unknown", "syslog-target", "csv", "kv-include",
         "kv", "json", "json-target", "eval", "keep", "keep-unknown", "drop", "timestamp", "geoip", "window"],
)
def test_stage_output_fields(snippet: str, upstream: set[str] | None, expected: set[str] | None, tmp_path: Path) -> None:
    stage = build_stage(snippet.replace("CITY_DB", str(write_city_db(tmp_path / "city.mmdb"))))
    given = None if upstream is None else frozenset(upstream)
    assert stage.output_fields(given) == (None if expected is None else frozenset(expected))


@pytest.mark.parametrize(
    "snippet, expected",
    [
        ("{type: kafka, brokers: [localhost:9092], topics: [t], fields: [key, timestamp]}", {"message", "_truncated", "kafka_key", "kafka_timestamp"}),
        ("{type: kafka, brokers: [localhost:9092], topics: [t], format: json}", None),
        (f"{{type: file, paths: ['{APACHE_LOG}']}}", LINES),
        ("{type: stdin}", LINES),
    ],
    ids=["kafka-raw", "kafka-json", "file", "stdin"],
)
def test_source_output_fields(snippet: str, expected: set[str] | None) -> None:
    source: Any = build_source(snippet)
    assert source.output_fields(frozenset()) == (None if expected is None else frozenset(expected))


@pytest.mark.parametrize("example", sorted(REPO.glob("examples/*/pipeline.yaml")), ids=lambda path: path.parent.name)
def test_every_example_still_compiles(example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOIP_DATABASE", str(write_city_db(tmp_path / "city.mmdb")))  # not the `demo` extra's
    compiled = load_and_compile(example)
    windows = [node.name for node in compiled.graph.nodes if node.type_name == "window"]
    fields = port_fields(compiled.graph, compiled.instances)
    for name in windows:  # the check is live on them: what reaches each window is known
        assert all(fields[ref] is not None for ref in compiled.graph.inputs_of(name))
