"""The `csv` stage on CSV exports of real access logs and on Zeek's tab-separated conn.log.

`cases/csv_apache_export.csv` is seven lines of `../shared/data/apache_access_10k.log` (elastic/examples,
Apache License 2.0) written out by Python's `csv` module under a header; the big test converts the whole file.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from loglake.schemas.errors import SpecError
from loglake.schemas.parsing import ParseFailure
from tests.support import APACHE_LOG, batch_of, build_stage

CASES = Path(__file__).parent / "cases"
EXPORT = (CASES / "csv_apache_export.csv").read_text().splitlines()
"""A header line and seven rows; agents with commas are quoted, `bytes` is `-` in one row."""
ZEEK = (CASES / "csv_zeek_conn.tsv").read_text().splitlines()
ZEEK_COLUMNS = (
    "[ts, uid, orig_h, orig_p, resp_h, resp_p, proto, service, duration, orig_bytes, resp_bytes, conn_state,"
    " local_orig, local_resp, missed_bytes, history, orig_pkts, orig_ip_bytes, resp_pkts, resp_ip_bytes, tunnel_parents]"
)
CHROME = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36"
ACCESS_COLUMNS = ["client", "ident", "auth", "timestamp", "verb", "request", "httpversion", "response", "bytes", "referrer", "agent"]
COMBINED = re.compile(r'(\S+) (\S+) (\S+) \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d+) (\S+) "([^"]*)" "([^"]*)"')


def _parse(lines: list[Any], snippet: str = "{type: csv}", **extra: list[Any]) -> Any:
    return build_stage(snippet, name="parse").process(batch_of(message=lines, **extra))


def _records(batch: pa.RecordBatch, skip: tuple[str, ...] = ("message", "seq", "source", "_line")) -> list[dict[str, Any]]:
    """The parsed columns of each row, nulls left out (as `parse_lines` leaves them out)."""
    return [{k: v for k, v in row.items() if k not in skip and v is not None} for row in batch.to_pylist()]


def test_header_names_the_columns_and_is_consumed() -> None:
    out = _parse(EXPORT, "{type: csv, header: true}")
    assert out.extra == {}
    assert out.main.num_rows == 7
    assert out.main.schema.names == ["message", *ACCESS_COLUMNS]
    assert out.main.slice(0, 1).to_pylist()[0] == {
        "message": EXPORT[1], "client": "83.149.9.216", "ident": "-", "auth": "-", "timestamp": "17/May/2015:10:05:03 +0000",
        "verb": "GET", "request": "/presentations/logstash-monitorama-2013/images/kibana-search.png", "httpversion": "HTTP/1.1",
        "response": "200", "bytes": "203023", "referrer": "http://semicomplete.com/presentations/logstash-monitorama-2013/",
        "agent": CHROME,
    }
    assert out.main.column("agent").to_pylist()[3:] == [
        "-",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)",
        "Chef Client/10.18.2 (ruby-1.9.3-p327; ohai-6.16.0; x86_64-linux; +http://opscode.com)",
    ]
    assert out.main.column("bytes").to_pylist() == ["203023", "171717", "7697", "1015", "294", "-", "324"]


def test_header_is_kept_per_source_across_batches() -> None:
    stage = build_stage("{type: csv, header: true}", name="parse")
    first = stage.process(batch_of(
        message=["time,level,msg", "status,bytes,path", "2024-01-02T03:04:05Z,info,started", "200,512,/index.html",
                 "2024-01-02T03:04:06Z,warn,disk at 91%"],
        source=["app.csv", "web.csv", "app.csv", "web.csv", "app.csv"],
    ))
    second = stage.process(batch_of(message=["404,0,/missing", "2024-01-02T03:04:07Z,error,disk full"], source=["web.csv", "app.csv"]))
    assert first.extra == {} and second.extra == {}
    assert first.main.column("message").to_pylist() == [
        "2024-01-02T03:04:05Z,info,started", "200,512,/index.html", "2024-01-02T03:04:06Z,warn,disk at 91%"
    ]
    assert _records(first.main) == [
        {"time": "2024-01-02T03:04:05Z", "level": "info", "msg": "started"},
        {"status": "200", "bytes": "512", "path": "/index.html"},
        {"time": "2024-01-02T03:04:06Z", "level": "warn", "msg": "disk at 91%"},
    ]
    assert _records(second.main) == [
        {"status": "404", "bytes": "0", "path": "/missing"},
        {"time": "2024-01-02T03:04:07Z", "level": "error", "msg": "disk full"},
    ]
    assert stage.ctx.counters["header_lines"] == 2


def test_line_one_is_the_header_and_a_stream_starting_mid_file_fails() -> None:
    stage = build_stage("{type: csv, header: true}", name="parse")
    first = stage.process(batch_of(message=["user,action", "alice,login", "bob,logout"], source=["a.csv"] * 3, _line=[1, 2, 3]))
    # a.csv rotated: the new file starts again at line 1 with other columns; b.csv is read from line 57 on
    second = stage.process(batch_of(
        message=["carol,login", "ts,status", "1715940304,200", "x,y"],
        source=["a.csv", "a.csv", "a.csv", "b.csv"], _line=[4, 1, 2, 57],
    ))
    assert _records(first.main) == [{"user": "alice", "action": "login"}, {"user": "bob", "action": "logout"}]
    assert _records(second.main) == [{"user": "carol", "action": "login"}, {"ts": "1715940304", "status": "200"}]
    dropped = second.extra["dropped"]
    assert dropped.column("message").to_pylist() == ["x,y"]
    assert dropped.column("_error").to_pylist() == [
        "no header line of b.csv seen to name the columns (did reading start inside the file?)"
    ]


def test_without_a_source_column_the_first_line_seen_is_the_header() -> None:
    stage = build_stage("{type: csv, header: true, infer_types: true}", name="parse")
    stage.process(batch_of(message=["host,cpu"]))
    out = stage.process(batch_of(message=["web-1,0.93", "web-2,0.41"]))
    assert _records(out.main) == [{"host": "web-1", "cpu": 0.93}, {"host": "web-2", "cpu": 0.41}]


@pytest.mark.parametrize(
    "header, names",
    [
        ("\ufeffdate,amount", ["date", "amount"]),
        (" date , amount ", ["date", "amount"]),
        (",date,,amount", ["column1", "date", "column3", "amount"]),
        ("id,id,name", ["id", "column2", "name"]),
        ('"order id","say ""hi"""', ["order id", 'say "hi"']),
    ],
    ids=["byte-order-mark", "spaces", "empty-names", "repeated-name", "quoted-names"],
)
def test_header_names_are_cleaned(header: str, names: list[str]) -> None:
    row = ",".join(str(i) for i in range(len(names)))
    out = _parse([header, row], "{type: csv, header: true}")
    assert out.main.schema.names == ["message", *names]
    assert out.main.to_pylist()[0] == {"message": row, **{name: str(i) for i, name in enumerate(names)}}


def test_a_header_line_that_does_not_parse_fails_with_its_rows() -> None:
    out = _parse(['time,"level', "2024-01-02T03:04:05Z,info"], "{type: csv, header: true}", source=["app.csv"] * 2)
    assert out.main.num_rows == 0
    assert out.extra["dropped"].column("_error").to_pylist() == [
        "bad header line: unterminated quoted field starting at char 6: 'time,\"level'",
        "no column names: the header line of app.csv did not parse",
    ]


@pytest.mark.parametrize(
    "snippet, line, expected",
    [
        ("{type: csv}", "10.0.0.1,GET,/index.html", {"column1": "10.0.0.1", "column2": "GET", "column3": "/index.html"}),
        ("{type: csv, columns: [client, verb, path]}", "10.0.0.1,GET,/index.html", {"client": "10.0.0.1", "verb": "GET", "path": "/index.html"}),
        ("{type: csv, columns: [client, verb]}", "10.0.0.1,GET,/index.html,200", {"client": "10.0.0.1", "verb": "GET", "column3": "/index.html", "column4": "200"}),
        ("{type: csv, columns: [client, verb, path, status]}", "10.0.0.1,GET", {"client": "10.0.0.1", "verb": "GET"}),
        ("{type: csv, columns: [client, column3]}", "10.0.0.1,GET,/x", {"client": "10.0.0.1", "column3": "GET", "column3_": "/x"}),
        ("{type: csv}", "10.0.0.1,,", {"column1": "10.0.0.1", "column2": "", "column3": ""}),
        ("{type: csv, skip_empty_values: true}", '10.0.0.1,,"",GET', {"column1": "10.0.0.1", "column4": "GET"}),
    ],
    ids=["default-names", "columns", "too-many-fields", "too-few-fields", "extra-name-taken", "empty-values", "skip-empty"],
)
def test_field_names(snippet: str, line: str, expected: dict[str, Any]) -> None:
    stage = build_stage(snippet, name="parse")
    out = stage.process(batch_of(message=[line]))
    assert _records(out.main) == [expected]
    assert stage.parse_lines([line]) == [expected]


def test_named_columns_are_always_present_in_a_batch() -> None:
    out = _parse(["10.0.0.1,GET"], "{type: csv, columns: [client, verb, path, status]}")
    assert out.main.schema.names == ["message", "client", "verb", "path", "status"]
    assert out.main.column("status").to_pylist() == [None]


@pytest.mark.parametrize(
    "line, fields",
    [
        ('1,"Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",3', ["1", "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0", "3"]),
        ('"a, b","c ""quoted"" d",e', ["a, b", 'c "quoted" d', "e"]),
        ('"",x,""', ["", "x", ""]),
        ('"""",x', ['"', "x"]),
        ('" padded ", kept ,x', [" padded ", " kept ", "x"]),
        ('"line one\nline two",x', ["line one\nline two", "x"]),
        ('x,"trailing"', ["x", "trailing"]),
        ("a,b,", ["a", "b", ""]),
    ],
    ids=["agent", "delimiter-and-quotes", "empty-quoted", "only-a-quote", "spaces-kept", "line-break-inside", "quoted-last", "trailing-delimiter"],
)
def test_quotes_and_escapes(line: str, fields: list[str]) -> None:
    stage = build_stage("{type: csv}", name="parse")
    out = stage.process(batch_of(message=[line, "plain,row"]))
    expected = {f"column{i + 1}": value for i, value in enumerate(fields)}
    assert _records(out.main)[0] == expected
    assert stage.parse_lines([line]) == [expected]


@pytest.mark.parametrize("delimiter", ['"\\t"', "'\\t'"], ids=["tab-character", "backslash-t"])
def test_zeek_conn_log_as_tsv(delimiter: str) -> None:
    out = _parse(ZEEK, f"{{type: csv, delimiter: {delimiter}, columns: {ZEEK_COLUMNS}}}")
    assert out.extra == {}
    assert out.main.column("uid").to_pylist() == ["CCUIP21wTjqkj8ZqX5", "CsssFS2D7Mbcg9mhy8", "CwjjYJ2WqgTbAqiHl6"]
    assert out.main.column("history").to_pylist() == ["ShADfFa", "ShADadFf", "D"]
    assert out.main.column("tunnel_parents").to_pylist() == ["(empty)"] * 3


def test_semicolons_and_single_quotes() -> None:
    out = _parse(["2024-01-02;'Müller, Jörg';'12,50 €'", "2024-01-03;'O''Brien';'3,00 €'"], "{type: csv, delimiter: ;, quote: \"'\"}")
    assert _records(out.main) == [
        {"column1": "2024-01-02", "column2": "Müller, Jörg", "column3": "12,50 €"},
        {"column1": "2024-01-03", "column2": "O'Brien", "column3": "3,00 €"},
    ]


def test_infer_types_per_column() -> None:
    out = _parse(ZEEK, f"{{type: csv, delimiter: '\\t', columns: {ZEEK_COLUMNS}, infer_types: true}}")
    main = out.main
    assert main.schema.field("ts").type == pa.float64()
    assert main.column("ts").to_pylist() == [1331901000.0, 1331901000.05, 1331901001.52]
    assert main.schema.field("orig_p").type == pa.int64()
    assert main.column("resp_p").to_pylist() == [80, 443, 137]
    assert main.column("missed_bytes").to_pylist() == [0, 0, 0]
    assert main.column("duration").to_pylist() == ["0.010000", "0.041312", "-"]  # `-` makes the column text
    assert main.column("orig_bytes").to_pylist() == ["166", "521", "-"]


@pytest.mark.parametrize(
    "values, expected, kind",
    [
        (["200", "404", "-17"], [200, 404, -17], pa.int64()),
        (["0.5", "12", "1e3", "2.5E-2"], [0.5, 12.0, 1000.0, 0.025], pa.float64()),
        (["true", "FALSE", "True"], [True, False, True], pa.bool_()),
        (["200", "", "500"], [200, None, 500], pa.int64()),
        (["200", "-", "500"], ["200", "-", "500"], pa.string()),
        (["1", "true"], ["1", "true"], pa.string()),
        (["007", "12"], ["007", "12"], pa.string()),
        (["9223372036854775807", "1"], [9223372036854775807, 1], pa.int64()),
        (["9223372036854775808", "1"], ["9223372036854775808", "1"], pa.string()),
        (["1e999", "1.5"], ["1e999", "1.5"], pa.string()),
        (["+5", "6"], ["+5", "6"], pa.string()),
        (["", ""], [None, None], pa.string()),
    ],
    ids=["ints", "decimals", "booleans", "empty-is-null", "dash-keeps-text", "int-and-bool", "leading-zeros",
         "int64-max", "beyond-int64", "overflowing-float", "plus-sign", "all-empty"],
)
def test_infer_types_kinds(values: list[str], expected: list[Any], kind: pa.DataType) -> None:
    stage = build_stage("{type: csv, columns: [id, v], infer_types: true}", name="parse")
    lines = [f"r{i},{value}" for i, value in enumerate(values)]
    out = stage.process(batch_of(message=lines))
    assert out.main.schema.field("v").type == kind
    assert out.main.column("v").to_pylist() == expected


def test_parse_lines_infers_each_value_on_its_own() -> None:
    stage = build_stage("{type: csv, columns: [host, v], infer_types: true}", name="parse")
    values = ["200", "-", "0.5", "true", "", "007", "9223372036854775808"]
    assert stage.parse_lines([f"web-1,{value}" for value in values]) == [
        {"host": "web-1", "v": v} for v in [200, "-", 0.5, True, None, "007", "9223372036854775808"]
    ]


def test_target_writes_one_struct() -> None:
    stage = build_stage("{type: csv, columns: [client, verb], target: http}", name="parse")
    out = stage.process(batch_of(message=["10.0.0.1,GET", None]))
    assert out.main.schema.names == ["message", "http"]
    assert out.main.column("http").to_pylist() == [{"client": "10.0.0.1", "verb": "GET"}, None]
    assert stage.parse_lines(["10.0.0.1,GET"]) == [{"http": {"client": "10.0.0.1", "verb": "GET"}}]


def test_parsed_column_replaces_one_of_the_same_name() -> None:
    out = _parse(["web-1,error", "web-2"], "{type: csv, columns: [host, level]}", level=["unknown", "unknown"])
    assert out.main.column("level").to_pylist() == ["error", "unknown"]
    assert out.main.column("host").to_pylist() == ["web-1", "web-2"]


BAD_LINES = [
    ('10.0.0.1,"GET /index.html', "unterminated quoted field starting at char 10: '10.0.0.1,\"GET /index.html'"),
    ('10.0.0.1,GET "/index.html"', "quote character inside an unquoted field at char 14: '10.0.0.1,GET \"/index.html\"'"),
    ('10.0.0.1,"GET" /index.html', "text after the closing quote at char 15: '10.0.0.1,\"GET\" /index.html'"),
    ('"a""b', "unterminated quoted field starting at char 1: '\"a\"\"b'"),
    ("", "empty line"),
    ("   ", "blank line: '   '"),
]


@pytest.mark.parametrize("bad, error", BAD_LINES, ids=["unterminated", "quote-in-plain-field", "text-after-quote", "escaped-then-open", "empty", "blank"])
def test_one_bad_line_among_good_ones(bad: str, error: str) -> None:
    lines = [*EXPORT[1:4], bad, *EXPORT[4:]]
    stage = build_stage("{type: csv}", name="parse")
    out = stage.process(batch_of(message=lines, seq=list(range(len(lines)))))
    assert out.main.column("seq").to_pylist() == [0, 1, 2, 4, 5, 6, 7]
    assert out.main.column("column11").to_pylist()[:3] == [CHROME] * 3
    dropped = out.extra["dropped"]
    assert dropped.column("message").to_pylist() == [bad]
    assert dropped.column("seq").to_pylist() == [3]
    assert dropped.column("_error").to_pylist() == [error]
    assert dropped.column("_error_node").to_pylist() == ["parse"]
    assert stage.parse_lines([bad]) == [ParseFailure(error)]


def test_a_megabyte_line() -> None:
    agent = "x" * 1_000_000
    good, bad = f'10.0.0.1,"{agent}",200', f'10.0.0.1,"{agent}'
    out = _parse([good, bad])
    assert out.main.column("column2").to_pylist() == [agent]
    assert out.main.column("column3").to_pylist() == ["200"]
    [error] = out.extra["dropped"].column("_error").to_pylist()
    assert error == "unterminated quoted field starting at char 10: '10.0.0.1,\"" + "x" * 109 + "…'"


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    batch = pa.RecordBatch.from_pydict({"message": pa.array([b"J\xf6rg,admin", b"alice,user"], pa.binary())})
    out = build_stage("{type: csv, columns: [user, role]}").process(batch)
    assert out.main.column("user").to_pylist() == ["J\ufffdrg", "alice"]


@pytest.mark.parametrize("on_error, rows, discarded", [("keep", 3, 0), ("discard", 2, 1)], ids=["keep", "discard"])
def test_bad_line_follows_on_error(on_error: str, rows: int, discarded: int) -> None:
    out = _parse(["web-1,200", 'web-2,"oops', "web-3,500"], f"{{type: csv, columns: [host, status], on_error: {on_error}}}")
    assert out.extra == {}
    assert out.discarded == discarded
    assert out.main.column("host").to_pylist() == ["web-1", "web-3", None][:rows]
    if on_error == "keep":
        assert out.main.column("message").to_pylist()[2] == 'web-2,"oops'
        assert out.main.column("_error").to_pylist() == [None, None, "unterminated quoted field starting at char 7: 'web-2,\"oops'"]


def test_null_line_passes_and_missing_or_non_text_field_fails() -> None:
    out = _parse([None, "web-1,200"], "{type: csv, columns: [host, status]}")
    assert out.main.column("host").to_pylist() == [None, "web-1"]
    all_null = _parse([None, None], "{type: csv, header: true}")  # a column of Arrow type null
    assert all_null.main.to_pylist() == [{"message": None}, {"message": None}]
    missing = build_stage("{type: csv, field: line}").process(batch_of(message=["a,b"]))
    assert missing.extra["dropped"].column("_error").to_pylist() == ["no field 'line' in the record"]
    numbers = build_stage("{type: csv, field: n}").process(batch_of(n=[1]))
    assert numbers.extra["dropped"].column("_error").to_pylist() == ["field 'n' holds int64, not text"]


def test_empty_batch_is_returned_as_is() -> None:
    empty = batch_of(message=["a,b"]).slice(0, 0)
    out = build_stage("{type: csv, header: true}").process(empty)
    assert out.main.num_rows == 0 and out.main.schema == empty.schema


def test_parse_lines_agrees_with_process() -> None:
    lines = [*EXPORT[1:], *(bad for bad, _ in BAD_LINES), "a", "a,b,c,d,e,f,g,h,i,j,k,l", '"q",2', "plain,row"]
    snippet = f"{{type: csv, columns: {ACCESS_COLUMNS}}}"
    out = build_stage(snippet, name="parse").process(batch_of(message=lines))
    results = build_stage(snippet, name="parse").parse_lines(lines)
    good = [r for r in results if not isinstance(r, ParseFailure)]
    assert _records(out.main) == good
    assert out.extra["dropped"].column("_error").to_pylist() == [r.reason for r in results if isinstance(r, ParseFailure)]


def test_parse_lines_reads_the_header_once_across_calls() -> None:
    stage = build_stage("{type: csv, header: true, infer_types: true}", name="parse")
    assert stage.parse_lines(EXPORT[:2]) == [{}, {**dict(zip(ACCESS_COLUMNS, EXPORT[1].split(",", 10))), "response": 200, "bytes": 203023, "agent": CHROME}]
    assert stage.parse_lines(EXPORT[4:5])[0]["bytes"] == 1015


def _as_csv(line: str) -> tuple[str, list[str]] | None:
    """A combined-format line as a CSV row written by Python's `csv` module, and its fields; None if it does not match."""
    match = COMBINED.fullmatch(line)
    if match is None:
        return None  # one line of the file is cut short
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(match.groups())
    return out.getvalue(), list(match.groups())


def test_ten_thousand_real_lines_match_pythons_csv_module() -> None:
    rows = [row for row in map(_as_csv, APACHE_LOG.read_text().splitlines()) if row is not None]
    assert len(rows) == 9_999
    lines = [text for text, _ in rows]
    assert sum('"' in line for line in lines) == 4_100  # these take the quoted path
    lines[4_321] = lines[4_321].replace(",", ',"', 1)  # one broken row among them
    snippet = f"{{type: csv, columns: {ACCESS_COLUMNS}, infer_types: true}}"
    out = build_stage(snippet, name="parse").process(batch_of(message=lines))
    assert out.extra["dropped"].column("message").to_pylist() == [lines[4_321]]
    expected = [fields for i, (_, fields) in enumerate(rows) if i != 4_321]
    for index, name in enumerate(ACCESS_COLUMNS):
        column = out.main.column(name).to_pylist()
        if name == "response":
            assert column == [int(fields[index]) for fields in expected]
        else:
            assert column == [fields[index] for fields in expected], name


def test_threads_with_their_own_files_share_one_stage() -> None:
    stage = build_stage("{type: csv, header: true}", name="parse")

    def run(worker: int) -> list[list[str | None]]:
        source = f"/var/log/export-{worker}.csv"
        names = f"id,w{worker}"
        seen = []
        for start in range(0, 200, 20):
            lines = ([names] if start == 0 else []) + [f"{i},{worker}" for i in range(start, start + 20)]
            out = stage.process(batch_of(message=lines, source=[source] * len(lines)))
            seen.append(out.main.column(f"w{worker}").to_pylist())
        return seen

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(8)))
    for worker, batches in enumerate(results):
        assert batches == [[str(worker)] * 20] * 10


@pytest.mark.parametrize(
    "snippet, path, message",
    [
        ("{type: csv, delimiter: '::'}", ("delimiter",), "must be exactly one character, not '::'"),
        ("{type: csv, delimiter: \"\\n\"}", ("delimiter",), "cannot be a line break"),
        ("{type: csv, quote: ','}", ("quote",), "'quote' and 'delimiter' are both ','"),
        ("{type: csv, header: true, columns: [a, b]}", ("columns",), "give 'columns' or 'header: true', not both (the header line names the columns)"),
        ("{type: csv, columns: [a, b, a]}", ("columns",), "column names repeat: a"),
        ("{type: csv, columns: []}", ("columns",), "give at least one column name, or leave 'columns' out"),
        ("{type: csv, columns: [a, '']}", ("columns",), "column names must not be empty"),
        ("{type: csv, delimeter: ';'}", ("delimeter",), "unknown key 'delimeter'; did you mean 'delimiter'?"),
    ],
    ids=["two-char-delimiter", "newline-delimiter", "quote-is-delimiter", "header-and-columns", "repeated-columns",
         "no-columns", "empty-column-name", "misspelt-key"],
)
def test_bad_config_is_a_spec_error(snippet: str, path: tuple[str, ...], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        build_stage(snippet, name="parse")
    [issue] = caught.value.issues
    assert (issue.path, issue.message, issue.node) == (path, message, "parse")


def _cli(*args: str, data: bytes) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "loglake.pipelines.cli", "parse", "csv", *args], input=data, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    text = done.stdout.decode("utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text[:-1].split("\n")]


@pytest.mark.e2e
def test_cli_prints_one_object_per_line() -> None:
    data = 'web-1,GET,200\n10.0.0.1,"GET /a, /b",404\n\nweb-2,POST"\nweb-3,GET,500,12ms\r\nweb-4\n'.encode()
    assert _cli("--columns", "host,verb,status", data=data) == [
        {"host": "web-1", "verb": "GET", "status": "200"},
        {"host": "10.0.0.1", "verb": "GET /a, /b", "status": "404"},
        {"_error": "empty line", "message": ""},
        {"_error": "quote character inside an unquoted field at char 11: 'web-2,POST\"'", "message": 'web-2,POST"'},
        {"host": "web-3", "verb": "GET", "status": "500", "column4": "12ms"},
        {"host": "web-4"},
    ]


@pytest.mark.e2e
def test_cli_header_line_prints_an_empty_object() -> None:
    data = "\n".join(EXPORT[:3]).encode() + b"\n"
    out = _cli("--header", "--infer-types", data=data)
    assert len(out) == 3 and out[0] == {}
    assert out[2]["request"] == "/presentations/logstash-monitorama-2013/images/kibana-dashboard3.png"
    assert (out[2]["response"], out[2]["bytes"], out[2]["agent"]) == (200, 171717, CHROME)
