"""Field types before a run: what stages declare, how it travels, and SQL that cannot bind to it reported at its line."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from loglake.operators.user_agent import USER_AGENT_TYPE
from loglake.pipelines.cli import main
from loglake.pipelines.compile import CompiledPipeline, load_and_compile, run_stage
from loglake.pipelines.field_types import port_types
from loglake.pipelines.fields import port_fields
from loglake.pipelines.runner import RunOptions, run_pipeline
from loglake.pipelines.spec import PortRef
from loglake.schemas.records import TIMESTAMP_TYPE, concat_batches
from tests.operators.mmdb_fixtures import write_city_db
from tests.support import APACHE_LOG, build_stage, compile_issues, drain

REPO = Path(__file__).resolve().parents[2]
TEXT, INT, FLOAT = pa.string(), pa.int64(), pa.float64()
LINE_TYPES = {"message": TEXT, "source": TEXT, "_line": INT, "_truncated": pa.bool_()}
TYPED_ACCESS = (
    r'%{IPORHOST:clientip} %{USER:ident} %{USER:auth} \[%{HTTPDATE:timestamp}\] "%{WORD:verb} %{NOTSPACE:request}'
    r'(?: HTTP/%{NUMBER:[http][version]:float})?" %{NUMBER:response:int} (?:%{NUMBER:bytes:int}|-) %{QS:referrer} "%{DATA:agent}"$'
)
"""The combined format with its numbers typed in the pattern (and the HTTP version nested)."""


def _pipeline(write_pipeline: Callable[..., Path], stages: str, sinks: str = "out: {type: stdout}", name: str = "pipeline.yaml") -> Path:
    """The real access log (source on line 3), `stages` from line 5 on, then `sinks`."""
    body = textwrap.indent(textwrap.dedent(stages).strip("\n"), "  ")
    head = f'pipeline: access\nsources:\n  access: {{type: file, paths: ["{APACHE_LOG}"]}}\nstages:\n'
    return write_pipeline(f"{head}{body}\nsinks:\n{textwrap.indent(textwrap.dedent(sinks).strip(), '  ')}\n", name)


def _types(compiled: CompiledPipeline) -> dict[PortRef, dict[str, pa.DataType]]:
    known = port_types(compiled.graph, compiled.instances, port_fields(compiled.graph, compiled.instances))
    return {ref: {name: field.type for name, field in types.items()} for ref, types in known.items()}


GROK_ROUTE = """
parse: {type: grok, field: message, patterns: ["%{COMBINEDAPACHELOG}"]}
split:
  type: route
  routes: {errors: "response >= 500", bots: "agent ILIKE '%bot%'"}
"""


def test_validate_reports_a_grok_capture_compared_with_a_number_at_its_line(
    write_pipeline: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _pipeline(write_pipeline, GROK_ROUTE)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f'{path}:8:22  stages.split.routes.errors  SQL expression "response >= 500" fails on every record: cannot compare '
        "text with a number; response is text (grok captures text, in node 'parse'); capture it as %{NUMBER:response:int} "
        "or convert it with a cast stage ({type: cast, fields: {response: int}}) (node 'split', type route)",
        f"1 problem in {path}; nothing was started.",
    ]


def _count_5xx(log: Path) -> int:
    """How many lines of the log have a status of 500 or more."""
    statuses = re.findall(r'^\S+ \S+ \S+ \[[^\]]+\] "[^"]*" (\d{3}) ', log.read_text(), re.MULTILINE)
    assert len(statuses) == 10_000
    return sum(1 for status in statuses if int(status) >= 500)


@pytest.mark.parametrize(
    "stages",
    [
        GROK_ROUTE.replace("%{COMBINEDAPACHELOG}", TYPED_ACCESS.replace("\\", "\\\\").replace('"', '\\"')),
        GROK_ROUTE.replace("split:", "typed: {type: cast, fields: {response: int}}\nsplit:"),
        GROK_ROUTE.replace('{type: grok, field: message, patterns: ["%{COMBINEDAPACHELOG}"]}', "{type: apache_combined}"),
    ],
    ids=["grok-int-capture", "cast-stage", "typed-preset"],
)
def test_a_typed_response_validates_and_routes_the_real_5xx_records(write_pipeline: Callable[[str], Path], tmp_path: Path, stages: str) -> None:
    path = _pipeline(write_pipeline, stages, "errors: {type: parquet, inputs: [split.errors], dataset: errors}")
    assert compile_issues(path) == []
    counts = {node.name: node.counts for node in run_pipeline(path, RunOptions()).nodes}
    assert counts["split"]["records_in"] > 9_900 and counts["split"].get("records_dropped", 0) == 0
    errors = duckdb.sql(f"SELECT count(*), min(response), any_value(typeof(response)) FROM read_parquet('{tmp_path}/lake/errors/**/*.parquet')")
    assert errors.fetchall() == [(_count_5xx(APACHE_LOG), 500, "BIGINT")]


def test_fields_of_unknown_type_are_never_reported(write_pipeline: Callable[[str], Path]) -> None:
    path = _pipeline(write_pipeline, """
        parse: {type: grok, field: message, patterns: ["%{COMBINEDAPACHELOG}"]}
        body: {type: json, inputs: [parse], field: request}
        typed: {type: cast, inputs: [parse], fields: {response: int}}
        mixed: {type: filter, inputs: [parse, typed], condition: "response >= 500"}
        opaque: {type: filter, inputs: [body], condition: "response >= 500 AND status + 1 > 200"}
        computed: {type: eval, inputs: [opaque], fields: {code: "status // 100"}}
        after: {type: filter, condition: "code = 5"}
    """, "out: {type: stdout, inputs: [mixed, after]}")
    compiled = load_and_compile(path)
    types = _types(compiled)
    assert types[PortRef("parse")]["response"] == TEXT and types[PortRef("typed")]["response"] == INT
    assert "response" not in types[PortRef("mixed")], "text on one input, int64 on the other: unknown"
    assert set(types[PortRef("body")]) == {"timestamp", "level"}, "only what the engine conforms after a json parse"
    assert "code" not in types[PortRef("computed")], "an expression over fields of unknown type has an unknown type"


@pytest.mark.parametrize("text_format", ["raw", "json"])
def test_kafka_fields_have_types_before_any_broker_is_reached(write_pipeline: Callable[[str], Path], text_format: str) -> None:
    """The metadata columns' types are known (validate needs no broker); `message` is text with `raw` and unknown
    with `json`, whose objects may hold a `message` of any type."""
    path = write_pipeline(textwrap.dedent(f"""\
        pipeline: k
        sources:
          app: {{type: kafka, brokers: ["127.0.0.1:1"], topics: [logs], format: {text_format}, fields: [partition, offset, key]}}
        stages:
          recent: {{type: filter, condition: "kafka_offset >= 10 AND kafka_partition = 0 AND kafka_key LIKE 'web-%'"}}
          big: {{type: filter, condition: "message >= 500"}}
        sinks:
          out: {{type: stdout}}
        """))
    expected = [] if text_format == "json" else [(
        "stages.big.condition", 6,
        'SQL expression "message >= 500" fails on every record: cannot compare text with a number; message is text; '
        "convert it with a cast stage ({type: cast, fields: {message: int}})",
    )]
    assert compile_issues(path) == expected
    if text_format == "json":
        known = _types(load_and_compile(path))[PortRef("app")]
        assert (known["kafka_offset"], known["kafka_partition"], known["kafka_key"]) == (INT, pa.int32(), TEXT)
        assert "message" not in known


def test_fields_of_the_same_type_on_every_path_stay_known(write_pipeline: Callable[[str], Path]) -> None:
    path = _pipeline(write_pipeline, """
        parse: {type: apache_combined}
        gets: {type: filter, condition: "verb = 'GET'"}
        posts: {type: filter, inputs: [parse], condition: "verb = 'POST'"}
        both: {type: filter, inputs: [gets, posts], condition: "response LIKE '5%'"}
    """)
    assert compile_issues(path) == [(
        "stages.both.condition", 8,
        "SQL expression \"response LIKE '5%'\" fails on every record: there is no LIKE for an integer and text; response is an integer",
    )]


def test_an_eval_result_type_reaches_a_later_filter(write_pipeline: Callable[[str], Path], tmp_path: Path) -> None:
    stages = """
        parse: {type: apache_combined}
        tidy: {type: eval, fields: {status_class: "response // 100", code: "CAST(response AS VARCHAR)"}, rename: {bytes: size}}
        errors: {type: filter, condition: "status_class = 5 AND coalesce(size, 0) >= 0"}
    """
    compiled = load_and_compile(_pipeline(write_pipeline, stages, "out: {type: parquet, dataset: errors}"))
    tidy = _types(compiled)[PortRef("tidy")]
    assert (tidy["status_class"], tidy["code"], tidy["size"]) == (INT, TEXT, INT) and "bytes" not in tidy
    assert compile_issues(_pipeline(write_pipeline, stages.replace("status_class = 5", "code >= 500"), name="text.yaml")) == [(
        "stages.errors.condition", 7,
        "SQL expression \"code >= 500 AND coalesce(size, 0) >= 0\" fails on every record: cannot compare text with a number; code is text; "
        "convert it with a cast stage ({type: cast, fields: {code: int}})",
    )]
    run_pipeline(compiled.spec.file, RunOptions())
    rows = duckdb.sql(f"SELECT count(*), min(status_class) FROM read_parquet('{tmp_path}/lake/errors/**/*.parquet')").fetchall()
    assert rows == [(_count_5xx(APACHE_LOG), 5)]


def test_an_eval_expression_that_cannot_bind_is_reported_with_the_types_it_reads(write_pipeline: Callable[[str], Path]) -> None:
    path = _pipeline(write_pipeline, """
        parse: {type: apache_combined}
        tidy: {type: eval, fields: {agent_length: "length(agent)", short: "lower(bytes)"}}
    """)
    assert compile_issues(path) == [(
        "stages.tidy.fields.short", 6,
        "SQL expression \"lower(bytes)\" fails on every record: there is no lower() for an integer; bytes is an integer",
    )]


def test_an_alert_condition_is_bound_to_the_window_rows(write_pipeline: Callable[[str], Path]) -> None:
    stages = """
        parse: {type: apache_combined}
        per_minute: {type: window, tumbling: 1m, aggregate: {requests: "count()", p95: "quantile(bytes, 0.95)", total: "sum(bytes)"}}
    """
    alert = '{type: alert, condition: "CONDITION", webhook: "http://127.0.0.1:9/hook"}'
    ok = _pipeline(write_pipeline, stages, "page: " + alert.replace("CONDITION", "total / requests > p95 AND window_end > now() - INTERVAL 1 HOUR"))
    types = _types(load_and_compile(ok))[PortRef("per_minute")]
    assert (types["requests"], types["p95"], types["total"], types["window_end"]) == (INT, FLOAT, INT, TIMESTAMP_TYPE)
    bad = _pipeline(write_pipeline, stages, "page: " + alert.replace("CONDITION", "requests LIKE '1%'"))
    assert [(where, message.split(":")[1]) for where, _, message in compile_issues(bad)] == [("sinks.page.condition", " there is no LIKE for an integer and text; requests is an integer")]


@pytest.mark.parametrize(
    "snippet, upstream, expected",
    [
        ("{type: grok, patterns: ['%{IP:client} %{NUMBER:bytes:int} %{NUMBER:[t][ms]:float} %{WORD:[t][unit]}']}", {"message": TEXT},
         {"message": TEXT, "client": TEXT, "bytes": INT, "t": pa.struct([("ms", FLOAT), ("unit", TEXT)])}),
        ("{type: grok, target: g, patterns: ['%{IP:client} %{NUMBER:n:int}']}", {"g": INT}, {"g": pa.struct([("client", TEXT), ("n", INT)])}),
        ("{type: apache_combined}", {}, {"clientip": TEXT, "ident": TEXT, "auth": TEXT, "timestamp": TIMESTAMP_TYPE, "verb": TEXT, "request": TEXT,
          "httpversion": TEXT, "rawrequest": TEXT, "response": INT, "bytes": INT, "referrer": TEXT, "agent": TEXT}),
        ("{type: nginx_error, target: e}", {}, {"timestamp": TIMESTAMP_TYPE, "level": TEXT, "e": pa.struct([
          ("pid", INT), ("tid", INT), ("connection", INT), ("errormsg", TEXT), ("clientip", TEXT), ("server", TEXT), ("request", TEXT),
          ("upstream", TEXT), ("http_host", TEXT), ("referrer", TEXT)])}),
        ("{type: regex, pattern: '(?P<a>x)'}", {"a": INT}, {"a": TEXT}),
        ("{type: syslog}", {"x": INT}, {"x": INT, "timestamp": TIMESTAMP_TYPE, "host": TEXT, "level": TEXT, "message": TEXT, "priority": pa.int32(),
          "facility": TEXT, "severity": TEXT, "version": pa.int32(), "appname": TEXT, "procid": TEXT, "msgid": TEXT, "structured_data": TEXT}),
        ("{type: json}", {"x": INT}, {}),
        ("{type: json, target: j}", {"x": INT, "j": INT}, {"x": INT}),
        ("{type: csv, columns: [a, b]}", {"x": INT}, {}),
        ("{type: kv, include_keys: [src]}", {"x": INT, "src": INT}, {"x": INT}),
        ("{type: cast, fields: {a: int, b: float, c: string, d: bool, e: timestamp}}", {"a": TEXT, "x": INT},
         {"a": INT, "b": FLOAT, "c": TEXT, "d": pa.bool_(), "e": TIMESTAMP_TYPE, "x": INT}),
        ("{type: timestamp, field: t, formats: [ISO8601], target: when}", {"t": TEXT}, {"t": TEXT, "when": TIMESTAMP_TYPE}),
        ("{type: eval, fields: {a: 'x + 1', b: 'y || 1'}, rename: {x: y, m: x}, remove: [z]}", {"x": INT, "m": TEXT, "z": INT},
         {"a": INT, "y": INT, "x": TEXT}),
        ("{type: eval, rename: {a: b}}", {"a": INT, "b": TEXT}, {}),
        ("{type: rename, fields: {a: b}}", {"a": INT}, {"b": INT}),
        ("{type: keep_fields, fields: [a]}", {"a": INT, "b": INT, "timestamp": TIMESTAMP_TYPE, "_line": INT}, {"a": INT, "timestamp": TIMESTAMP_TYPE, "_line": INT}),
        ("{type: drop_fields, fields: [a]}", {"a": INT, "b": INT}, {"b": INT}),
        ("{type: user_agent, field: agent, target: ua}", {"agent": TEXT}, {"agent": TEXT, "ua": USER_AGENT_TYPE}),
        ("{type: geoip, field: ip, database: CITY_DB, fields: [city, latitude]}", {"ip": TEXT}, {"ip": TEXT, "geo": pa.struct([("city", TEXT), ("latitude", FLOAT)])}),
        ("{type: filter, condition: 'true'}", {"a": INT}, {"a": INT}),
        ("{type: route, routes: {r: 'true'}}", {"a": INT}, {"a": INT}),
        ("{type: sample, rate: 10}", {"a": INT}, {"a": INT}),
        ("{type: dedupe, key: [a], window: 1m}", {"a": INT}, {"a": INT}),
        ("{type: multiline, pattern: '^\\s', match: after}", {"a": INT, "message": pa.large_string()}, {"a": INT, "message": TEXT}),
        ("{type: window, tumbling: 1m, group_by: [g], aggregate: {n: count(), s: sum(x), f: sum(y), m: max(x), t: 'top_k(g, 3)'}}", {"x": INT, "g": TEXT},
         {"window_start": TIMESTAMP_TYPE, "window_end": TIMESTAMP_TYPE, "timestamp": TIMESTAMP_TYPE, "n": INT, "s": INT, "m": INT,
          "t": pa.list_(pa.struct([("value", TEXT), ("count", INT)]))}),
    ],
    ids=["grok", "grok-target", "preset", "preset-target", "regex", "syslog", "json", "json-target", "csv", "kv-include", "cast", "timestamp", "eval",
         "eval-rename-over-other-type", "rename", "keep", "drop", "user-agent", "geoip", "filter", "route", "sample", "dedupe", "multiline", "window"],
)
def test_stage_output_types(snippet: str, upstream: dict[str, pa.DataType], expected: dict[str, pa.DataType], tmp_path: Path) -> None:
    stage = build_stage(snippet.replace("CITY_DB", str(write_city_db(tmp_path / "city.mmdb"))))
    assert stage.output_types(upstream) == expected


def _outputs(compiled: CompiledPipeline) -> dict[PortRef, pa.RecordBatch]:
    """Every output of every node for the whole real log, each stage run the way the engine runs it."""
    outputs: dict[PortRef, pa.RecordBatch] = {}
    for node in compiled.graph.nodes:
        instance: Any = compiled.instances[node.name]
        if node.kind == "source":
            outputs[PortRef(node.name)] = concat_batches([b for p in instance.partitions() for b in drain(instance.open(p, None))])
        elif node.kind == "stage":
            batch = concat_batches([outputs[ref] for ref in compiled.graph.inputs_of(node.name)])
            output = run_stage(instance, compiled.contexts[node.name], batch)
            outputs[PortRef(node.name)] = output.main
            outputs.update({PortRef(node.name, port): extra for port, extra in output.extra.items()})
    return outputs


def test_declared_types_are_the_types_stages_give_real_lines(write_pipeline: Callable[[str], Path], tmp_path: Path) -> None:
    path = _pipeline(write_pipeline, f"""
        parse: {{type: grok, patterns: ['{TYPED_ACCESS}'], on_error: keep}}
        typed: {{type: cast, fields: {{bytes: float}}}}
        when: {{type: timestamp, field: timestamp, formats: [APACHE], target: seen}}
        geo: {{type: geoip, field: clientip, database: {write_city_db(tmp_path / "city.mmdb")}}}
        ua: {{type: user_agent, field: agent, target: ua}}
        tidy: {{type: eval, fields: {{status_class: "response // 100", kb: "bytes / 1024", day: "seen::DATE", bot: ua.is_bot}}, rename: {{clientip: client}}}}
        split: {{type: route, routes: {{big: "kb > 100 OR status_class = 5"}}}}
        slim: {{type: keep_fields, inputs: [split.big], fields: [client, status_class, kb, day, bot, geo, http, seen, source]}}
    """)
    compiled = load_and_compile(path)
    declared = _types(compiled)
    outputs = _outputs(compiled)
    checked = set()
    for ref, batch in outputs.items():
        for field in batch.schema:
            if field.name in declared.get(ref, {}):
                assert (ref, field.name, field.type) == (ref, field.name, declared[ref][field.name])
                checked.add(field.name)
    assert outputs[PortRef("slim")].num_rows > 0
    assert {"response", "http", "bytes", "seen", "timestamp", "geo", "ua", "status_class", "kb", "day", "bot", "_error", "_line"} <= checked
    assert set(declared[PortRef("slim")]) == {"client", "status_class", "kb", "day", "bot", "geo", "http", "seen", "source", "timestamp", "level", "_error", "_error_node", "_line", "_truncated"}


def test_the_example_and_benchmark_pipelines_still_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = write_city_db(tmp_path / "city.mmdb")
    monkeypatch.setenv("GEOIP_DATABASE", str(database))  # not the `demo` extra's
    bench = (REPO / "benchmarks" / "nginx" / "pipeline.yaml").read_text().replace("geolite2-demo", str(database))
    (tmp_path / "bench.yaml").write_text(bench)
    for path in [*sorted(REPO.glob("examples/*/pipeline.yaml")), tmp_path / "bench.yaml"]:
        assert compile_issues(path) == [], path
