"""The `grok` stage on the shared 10,000-line Apache log and on hand-written lines for each grok feature."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from loglake.schemas.errors import SpecError
from loglake.schemas.parsing import ParseFailure
from tests.support import APACHE_LOG, batch_of, build_stage

CASES = Path(__file__).parent / "cases"
APACHE = APACHE_LOG.read_text(encoding="utf-8").splitlines()
APACHE_ERRORS = (CASES / "apache_error.log").read_text(encoding="utf-8").splitlines()
TRUNCATED = 8898
"""The one line of the file cut short: its user agent has no closing quote, so COMBINEDAPACHELOG cannot match it."""
COMBINED = "{type: grok, patterns: ['%{COMBINEDAPACHELOG}']}"
TYPED = (
    r"""{type: grok, patterns: ['^%{IPORHOST:clientip} %{USER:ident} %{USER:auth} \[%{HTTPDATE:timestamp}\] "%{WORD:verb} """
    r"""%{NOTSPACE:request} HTTP/%{NUMBER:httpversion:float}" %{INT:response:int} (?:%{INT:bytes:int}|-)']}"""
)


def _grok(lines: list[Any], snippet: str = COMBINED, **extra: list[Any]) -> Any:
    return build_stage(snippet, name="parse").process(batch_of(message=lines, **extra))


def _row(out: Any, index: int, names: list[str]) -> dict[str, Any]:
    return {name: out.main.column(name)[index].as_py() for name in names}


def test_every_line_of_the_apache_log_matches_but_the_truncated_one() -> None:
    out = _grok(APACHE)
    main, dropped = out.main, out.extra["dropped"]
    assert main.num_rows == 9_999
    assert main.schema.names == ["message", "clientip", "ident", "auth", "timestamp", "verb", "request", "httpversion",
                                 "rawrequest", "response", "bytes", "referrer", "agent"]
    assert all(main.schema.field(name).type == pa.string() for name in main.schema.names)
    assert dropped.column("message").to_pylist() == [APACHE[TRUNCATED]]
    assert main.column("message").to_pylist() == APACHE[:TRUNCATED] + APACHE[TRUNCATED + 1:]
    counts = pc.value_counts(main.column("response")).to_pylist()
    assert {c["values"]: c["counts"] for c in counts} == {
        "200": 9_125, "304": 445, "404": 213, "301": 164, "206": 45, "500": 3, "416": 2, "403": 2,
    }
    verbs = pc.value_counts(main.column("verb")).to_pylist()
    assert {c["values"]: c["counts"] for c in verbs} == {"GET": 9_951, "HEAD": 42, "OPTIONS": 1, "POST": 5}
    assert main.column("bytes").null_count == 669
    assert pc.sum(pc.cast(main.column("bytes"), pa.int64())).as_py() == 2_747_282_505
    assert pc.count_distinct(main.column("clientip")).as_py() == 1_753
    assert pc.sum(pc.equal(main.column("httpversion"), "1.0")).as_py() == 700
    assert main.column("rawrequest").null_count == 9_999
    assert main.column("ident").unique().to_pylist() == ["-"]


SAMPLE = ["clientip", "ident", "auth", "timestamp", "verb", "request", "httpversion", "rawrequest", "response", "bytes", "referrer", "agent"]


@pytest.mark.parametrize(
    "index, expected",
    [
        (0, ["83.149.9.216", "-", "-", "17/May/2015:10:05:03 +0000", "GET",
             "/presentations/logstash-monitorama-2013/images/kibana-search.png", "1.1", None, "200", "203023",
             '"http://semicomplete.com/presentations/logstash-monitorama-2013/"',
             '"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36"']),
        (43, ["200.49.190.101", "-", "-", "17/May/2015:10:05:36 +0000", "GET", "/reset.css", "1.1", None, "200", "1015", '"-"', '"-"']),
        (76, ["218.30.103.62", "-", "-", "17/May/2015:11:05:11 +0000", "GET", "/robots.txt", "1.1", None, "200", None, '"-"',
              '"Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)"']),
        (5008, ["37.115.186.244", "-", "-", "19/May/2015:04:05:16 +0000", "POST", "/blog/geekery/xvfb-firefox", "1.0", None, "200",
                "10975", '"http://zoomq.qiniudn.com/ZQScrapBook/ZqFLOSS/data/20110811235550/"',
                '"Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.11 (KHTML, like Gecko) Chrome/23.0.1271.91 Safari/537.11"']),
        (9157, ["64.131.102.243", "-", "-", "20/May/2015:14:05:16 +0000", "OPTIONS", "/projects/xdotool/", "1.1", None, "500", "626",
                '"-"', '"Microsoft Office Protocol Discovery"']),
    ],
    ids=["kibana-png", "no-referrer-no-agent", "bytes-dash", "post-http10", "options-500"],
)
def test_hand_checked_apache_lines(index: int, expected: list[Any]) -> None:
    out = _grok([APACHE[index]])
    assert _row(out, 0, SAMPLE) == dict(zip(SAMPLE, expected))


def test_conversions_make_typed_columns() -> None:
    out = _grok([APACHE[0], APACHE[76], APACHE[5008]], TYPED)
    assert out.main.schema.field("response").type == pa.int64()
    assert out.main.schema.field("bytes").type == pa.int64()
    assert out.main.schema.field("httpversion").type == pa.float64()
    assert out.main.column("response").to_pylist() == [200, 200, 200]
    assert out.main.column("bytes").to_pylist() == [203023, None, 10975]
    assert out.main.column("httpversion").to_pylist() == [1.1, 1.1, 1.0]


@pytest.mark.parametrize(
    "line, error",
    [
        ("n=1.5", "_grokparsefailure: n '1.5' is not an int (64-bit)"),
        ("n=99999999999999999999", "_grokparsefailure: n '99999999999999999999' is not an int (64-bit)"),
        ("n=-", "_grokparsefailure: n '-' is not an int (64-bit)"),
    ],
    ids=["decimal", "beyond-int64", "dash"],
)
def test_a_value_that_does_not_convert_fails_its_line(line: str, error: str) -> None:
    out = _grok(["n=+42", line, "n=-7"], "{type: grok, patterns: ['n=%{NOTSPACE:n:int}']}")
    assert out.main.column("n").to_pylist() == [42, -7]
    assert out.extra["dropped"].column("_error").to_pylist() == [error]


def test_float_conversion_and_nan_text() -> None:
    out = _grok(["t=0.25", "t=1e3", "t=-.5", "t=nan"], "{type: grok, patterns: ['t=%{NOTSPACE:t:float}']}")
    assert out.main.column("t").to_pylist() == [0.25, 1000.0, -0.5]
    assert out.extra["dropped"].column("_error").to_pylist() == ["_grokparsefailure: t 'nan' is not a float (64-bit)"]


ORDER_LINES = [
    "2024-05-17T10:05:03Z INFO [http-nio-8080-exec-1] order=DE-004711 took=48ms",
    "2024-05-17T10:05:04Z ERROR [scheduler] order=FR-000042-2 took=1200ms",
]


def test_pattern_dir_relative_to_the_pipeline_folder_later_file_wins() -> None:
    stage = build_stage("{type: grok, patterns: ['%{ORDERLOG}'], pattern_dirs: [grok_patterns]}", base_dir=CASES)
    out = stage.process(batch_of(message=ORDER_LINES))
    assert out.extra == {}
    assert out.main.column("order").to_pylist() == ["DE-004711", "FR-000042-2"]  # zz_override's ORDERID accepts "-2"
    assert out.main.column("took_ms").to_pylist() == [48, 1200]
    assert out.main.column("thread").to_pylist() == ["http-nio-8080-exec-1", "scheduler"]
    assert out.main.column("when").to_pylist() == ["2024-05-17T10:05:03Z", "2024-05-17T10:05:04Z"]


def test_inline_definitions_win_over_pattern_dirs_and_later_dirs_over_earlier(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    (tmp_path / "first" / "ids").write_text("TICKET T[0-9]+\nTICKET X[0-9]+\n")  # a later line of a file wins
    (tmp_path / "second" / "ids").write_text("TICKET [A-Z][0-9]+\n")
    line = ["ticket X12 Q7"]
    one = build_stage("{type: grok, patterns: ['%{TICKET:t}'], pattern_dirs: [first]}", base_dir=tmp_path)
    assert one.parse_lines(line) == [{"t": "X12"}]
    both = build_stage("{type: grok, patterns: ['%{TICKET:t} %{TICKET:u}'], pattern_dirs: [first, second]}", base_dir=tmp_path)
    assert both.parse_lines(line) == [{"t": "X12", "u": "Q7"}]
    inline = build_stage(
        "{type: grok, patterns: ['%{TICKET:t}'], pattern_dirs: [first, second], pattern_definitions: {TICKET: 'Q[0-9]'}}", base_dir=tmp_path
    )
    assert inline.parse_lines(line) == [{"t": "Q7"}]


def test_redefining_a_library_pattern_changes_the_patterns_built_on_it() -> None:
    stage = build_stage("{type: grok, patterns: ['%{HOSTPORT:hp}'], pattern_definitions: {POSINT: '\\b(?:80|443)\\b'}}")
    assert stage.parse_lines(["proxy to web:8080 or web:443"]) == [{"hp": "web:443"}]


@pytest.mark.parametrize(
    "line, expected",
    [("aa-xyz", {"v": "aa"}), ("-xyz", {"v": "xyz"}), ("aa-", None)],
    ids=["first-wins", "first-empty", "no-match"],
)
def test_duplicate_names_take_the_first_non_empty_capture(line: str, expected: dict[str, str] | None) -> None:
    stage = build_stage("{type: grok, patterns: ['^(?<v>a*)-(?<v>\\w+)$']}")
    [result] = stage.parse_lines([line])
    assert result == expected if expected else isinstance(result, ParseFailure)
    if expected:
        assert stage.process(batch_of(message=[line])).main.column("v").to_pylist() == [expected["v"]]


def test_alternative_library_patterns_capturing_one_name() -> None:
    """HTTPD_ERRORLOG is HTTPD20_ERRORLOG|HTTPD24_ERRORLOG, both capturing `timestamp`: the branch that matched gives it."""
    stage = build_stage("{type: grok, patterns: ['%{HTTPD_ERRORLOG}']}")
    new, old = APACHE_ERRORS[0], APACHE_ERRORS[4]
    assert stage.parse_lines([old])[0] == {
        "timestamp": "Wed Oct 11 14:32:52 2000", "loglevel": "error", "clientip": "127.0.0.1",
        "errormsg": "client denied by server configuration: /export/home/live/ap/htdocs/test",
    }
    assert stage.parse_lines([new])[0]["timestamp"] == "Wed Oct 11 14:32:52.123456 2000"


def test_empty_capture_is_left_out_like_logstash() -> None:
    stage = build_stage("{type: grok, patterns: ['^%{DATA:user}:%{GREEDYDATA:rest}$']}")
    assert stage.parse_lines([":x", "bob:"]) == [{"rest": "x"}, {"user": "bob"}]
    out = stage.process(batch_of(message=[":x"]))
    assert out.main.column("user").to_pylist() == [None]


NESTED = "{type: grok, patterns: ['%{IP:[client][ip]} %{USER:[client][user]} %{INT:[http][status]:int}(?: %{WORD:[http][note]})?']}"


def test_nested_names_become_structs_and_dicts() -> None:
    lines = ["192.0.2.1 alice 200 cached", "2001:db8::2 bob 503"]
    stage = build_stage(NESTED)
    out = stage.process(batch_of(message=lines))
    assert out.main.schema.names == ["message", "client", "http"]
    assert out.main.schema.field("http").type == pa.struct([("status", pa.int64()), ("note", pa.string())])
    assert out.main.column("client").to_pylist() == [{"ip": "192.0.2.1", "user": "alice"}, {"ip": "2001:db8::2", "user": "bob"}]
    assert out.main.column("http").to_pylist() == [{"status": 200, "note": "cached"}, {"status": 503, "note": None}]
    assert stage.parse_lines(lines) == [
        {"client": {"ip": "192.0.2.1", "user": "alice"}, "http": {"status": 200, "note": "cached"}},
        {"client": {"ip": "2001:db8::2", "user": "bob"}, "http": {"status": 503}},
    ]


def test_target_writes_one_struct_null_for_null_lines() -> None:
    out = _grok(["192.0.2.1 alice 200", None], NESTED.replace("']}", "'], target: event}"))
    assert out.main.schema.names == ["message", "event"]
    assert out.main.column("event").to_pylist() == [
        {"client": {"ip": "192.0.2.1", "user": "alice"}, "http": {"status": 200, "note": None}}, None
    ]


def test_target_with_a_kept_failure() -> None:
    snippet = NESTED.replace("']}", "'], target: event, on_error: keep}")
    out = _grok(["10.0.0.9 carol 302", "no address here", None], snippet)
    assert out.main.column("message").to_pylist() == ["10.0.0.9 carol 302", None, "no address here"]
    assert out.main.column("event").to_pylist() == [
        {"client": {"ip": "10.0.0.9", "user": "carol"}, "http": {"status": 302, "note": None}}, None, None
    ]
    assert out.main.column("_error").to_pylist() == [None, None, "_grokparsefailure: no pattern matched: 'no address here'"]


def test_first_pattern_that_matches_wins_and_columns_are_the_union() -> None:
    snippet = "{type: grok, patterns: ['^%{INT:code:int} %{WORD:word}', '^%{WORD:word} %{INT:code:int}', '%{IP:ip}']}"
    out = _grok(["404 missing", "missing 404", "from host-10.1.2.3", "12 34", "?"], snippet)
    assert out.main.column("code").to_pylist() == [404, 404, None, 12]
    assert out.main.column("word").to_pylist() == ["missing", "missing", None, "34"]
    assert out.main.column("ip").to_pylist() == [None, None, "10.1.2.3", None]
    assert out.extra["dropped"].column("message").to_pylist() == ["?"]


@pytest.mark.parametrize(
    "snippet, line, expected",
    [
        ("{type: grok, patterns: ['%{INT:n}']}", "retry 3 of 5", {"n": "3"}),
        ("{type: grok, patterns: ['^%{INT:n}']}", "retry 3 of 5", None),
        ("{type: grok, patterns: ['(?<a>(?>x+))x']}", "xxxx", None),
        ("{type: grok, patterns: ['(?<a>x+)x']}", "xxxx", {"a": "xxx"}),
        ("{type: grok, patterns: ['(?<id>[A-Z]+)-(?P<num>[0-9]+)']}", "ref ABC-12", {"id": "ABC", "num": "12"}),
        ("{type: grok, patterns: ['(?<w>[[:alpha:]]+)']}", "42 abc", {"w": "abc"}),
        ("{type: grok, patterns: ['(?<q>[\"''])(?<v>[^\"'']*)\\k<q>']}", "say 'hi'", {"q": "'", "v": "hi"}),
        ("{type: grok, patterns: ['(x)?(?<v>y)(?(1)z|w)']}", "yw", {"v": "y"}),
    ],
    ids=["unanchored", "anchored", "atomic-group", "backtracking", "oniguruma-and-python-names", "posix-class",
         "named-backreference", "numbered-conditional"],
)
def test_regex_features(snippet: str, line: str, expected: dict[str, str] | None) -> None:
    [result] = build_stage(snippet).parse_lines([line])
    assert result == expected if expected else isinstance(result, ParseFailure)


@pytest.mark.parametrize(
    "line, notspace, word",
    [("café crème 3", "café", "café"), ("cafe\u0301 3", "cafe\u0301", "cafe\u0301"), ("x\x1cy 3", "x\x1cy", "x"),
     ("naïve\x1f 3", "naïve\x1f", "naïve")],
    ids=["accented", "combining-mark", "ascii-control-char", "both"],
)
def test_lines_read_with_the_regex_module_semantics(line: str, notspace: str, word: str) -> None:
    """`\\w` takes combining marks and `\\S` takes 0x1C–0x1F, as the `regex` module has it (Python's `re` differs)."""
    stage = build_stage("{type: grok, patterns: ['^%{NOTSPACE:a}']}")
    assert stage.parse_lines([line]) == [{"a": notspace}]
    assert build_stage("{type: grok, patterns: ['^%{WORD:a}']}").parse_lines([line]) == [{"a": word}]
    out = stage.process(batch_of(message=[APACHE[0], line]))
    assert out.main.column("a").to_pylist() == ["83.149.9.216", notspace]


ONE_MB = 1 << 20


@pytest.mark.parametrize(
    "bad, quoted",
    [
        (APACHE[TRUNCATED], "'46.118.127.106 - - [20/May/2015:12:05:17 +0000] \"GET /scripts/grok-py-test/configlib.py HTTP/1.1\" 200 235 \"-\" \"Mozilla/…'"),
        ("", "''"),
        ("x" * ONE_MB, "'" + "x" * 119 + "…'"),
        ('{"level": "info", "msg": "not an access log"}', "'{\"level\": \"info\", \"msg\": \"not an access log\"}'"),
        ("\x00\x01\x02 binary \ufffd", "'\\x00\\x01\\x02 binary \ufffd'"),
    ],
    ids=["truncated", "empty", "one-megabyte", "json", "control-bytes"],
)
def test_unmatched_line_is_routed_with_the_failure_tag(bad: str, quoted: str) -> None:
    lines = [APACHE[0], bad, APACHE[1]]
    out = _grok(lines, seq=[0, 1, 2])
    assert out.main.column("seq").to_pylist() == [0, 2]
    assert out.main.column("timestamp").to_pylist() == ["17/May/2015:10:05:03 +0000", "17/May/2015:10:05:43 +0000"]
    dropped = out.extra["dropped"]
    assert dropped.column("message").to_pylist() == [bad]
    assert dropped.column("_error").to_pylist() == [f"_grokparsefailure: no pattern matched: {quoted}"]
    assert dropped.column("_error_node").to_pylist() == ["parse"]


def test_one_megabyte_line_that_matches_is_kept_whole() -> None:
    agent = "Mozilla/5.0 " + "x" * ONE_MB
    line = APACHE[43].replace('"-" "-"', f'"-" "{agent}"')
    out = _grok([line])
    assert out.main.column("agent").to_pylist() == [f'"{agent}"']


@pytest.mark.parametrize(
    "on_error, rows, discarded", [("keep", 3, 0), ("discard", 2, 1)], ids=["keep", "discard"]
)
def test_unmatched_line_follows_on_error(on_error: str, rows: int, discarded: int) -> None:
    out = _grok([APACHE[0], "garbage", APACHE[1]], f"{{type: grok, patterns: ['%{{COMBINEDAPACHELOG}}'], on_error: {on_error}}}")
    assert out.main.num_rows == rows and out.discarded == discarded and out.extra == {}
    assert out.main.column("clientip").to_pylist()[:2] == ["83.149.9.216", "83.149.9.216"]
    if on_error == "keep":
        assert out.main.column("message").to_pylist()[2] == "garbage"
        assert out.main.column("_error").to_pylist() == [None, None, "_grokparsefailure: no pattern matched: 'garbage'"]


@pytest.mark.parametrize("tag, error", [("_apachefail", "_apachefail: no pattern matched: 'oops'"), ("''", "no pattern matched: 'oops'")],
                         ids=["custom", "none"])
def test_tag_on_failure(tag: str, error: str) -> None:
    out = _grok(["oops"], f"{{type: grok, patterns: ['%{{IP:ip}}'], tag_on_failure: {tag}}}")
    assert out.extra["dropped"].column("_error").to_pylist() == [error]


@pytest.mark.parametrize(
    "snippet, path, message",
    [
        ("{type: grok, patterns: ['%{NOPE}']}", ("patterns", 0), "grok pattern '%{NOPE}': unknown pattern name 'NOPE'"),
        ("{type: grok, patterns: ['%{IP:ip}', '%{COMBINEDAPACHELOGG}']}", ("patterns", 1),
         "grok pattern '%{COMBINEDAPACHELOGG}': unknown pattern name 'COMBINEDAPACHELOGG'; did you mean 'COMBINEDAPACHELOG'?"),
        ("{type: grok, patterns: ['%{OUTER}'], pattern_definitions: {OUTER: 'a %{INNER}'}}", ("patterns", 0),
         "grok pattern '%{OUTER}': unknown pattern name 'INNER' (in pattern OUTER)"),
        ("{type: grok, patterns: ['%{WORD:w} (unclosed']}", ("patterns", 0),
         "grok pattern '%{WORD:w} (unclosed': does not compile: missing )"),
        ("{type: grok, patterns: ['%{INT:n:long}']}", ("patterns", 0),
         "grok pattern '%{INT:n:long}': unknown conversion 'long' for 'n' (valid: int, float)"),
        ("{type: grok, patterns: ['%{A}'], pattern_definitions: {A: 'x%{B}', B: '%{A}'}}", ("patterns", 0),
         "grok pattern '%{A}': pattern A refers to itself: A → B → A"),
        ("{type: grok, patterns: ['%{INT:n:int} %{INT:n:float}']}", ("patterns", 0),
         "grok pattern '%{INT:n:int} %{INT:n:float}': 'n' is converted to both int and float"),
        ("{type: grok, patterns: ['%{WORD:a} %{WORD:[a][b]}']}", ("patterns",),
         "'a' is captured both as a value and as the parent of '[a][b]'"),
        ("{type: grok, patterns: ['%{NUMBER:x y}']}", ("patterns", 0), "malformed reference '%{NUMBER:x y}'"),
        ("{type: grok, patterns: ['%{IP}'], pattern_dirs: [no_such_folder]}", ("pattern_dirs", 0), "does not exist"),
        ("{type: grok, patterns: ['%{IP}'], pattern_definitions: {'bad name': 'x'}}", ("pattern_definitions", "bad name"),
         "pattern name 'bad name' may hold only letters, digits and _"),
        ("{type: grok, patterns: []}", ("patterns",), "at least 1 item"),
    ],
    ids=["unknown-name", "did-you-mean", "unknown-in-definition", "does-not-compile", "unknown-conversion", "recursive",
         "conflicting-types", "value-and-parent", "malformed-reference", "missing-dir", "bad-definition-name", "no-patterns"],
)
def test_bad_config_is_a_spec_error_naming_pattern_and_reason(snippet: str, path: tuple[str, ...], message: str, tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        build_stage(snippet, base_dir=tmp_path)
    [issue] = caught.value.issues
    assert issue.path == path
    assert message in issue.message
    assert issue.node_type == "grok"


def test_malformed_pattern_file_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "mine").write_text("# comment\n\nGOOD [a-z]+\nLONELYNAME\n")
    with pytest.raises(SpecError) as caught:
        build_stage("{type: grok, patterns: ['%{GOOD}'], pattern_dirs: ['.']}", base_dir=tmp_path)
    [issue] = caught.value.issues
    assert issue.path == ("pattern_dirs", 0)
    assert issue.message == f"{tmp_path / 'mine'}:4: expected 'NAME regex' with NAME of letters, digits and _, got 'LONELYNAME'"


AGREEMENT_LINES = [*APACHE[:40], APACHE[76], APACHE[TRUNCATED], "", "n/a", APACHE[0]]


@pytest.mark.parametrize("snippet", [COMBINED, TYPED, NESTED], ids=["combined", "typed", "nested"])
def test_parse_lines_agrees_with_process(snippet: str) -> None:
    stage = build_stage(snippet, name="parse")
    parsed = stage.parse_lines(AGREEMENT_LINES)
    out = stage.process(batch_of(message=AGREEMENT_LINES, row=list(range(len(AGREEMENT_LINES)))))
    main = out.main.to_pylist()
    dropped = out.extra["dropped"].to_pylist()
    assert len(parsed) == len(AGREEMENT_LINES) == len(main) + len(dropped)
    kept = iter(main)
    failures = iter(dropped)
    for line, result in zip(AGREEMENT_LINES, parsed):
        if isinstance(result, ParseFailure):
            failed = next(failures)
            assert (failed["message"], failed["_error"]) == (line, result.reason)
            continue
        row = next(kept)
        assert row["message"] == line
        stored = {key: value for key, value in row.items() if key not in ("message", "row") and value is not None}
        assert {key: _pruned(value) for key, value in stored.items()} == result


def _pruned(value: Any) -> Any:
    return {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value


def test_capture_replaces_a_column_and_keeps_it_where_nothing_was_captured() -> None:
    snippet = "{type: grok, patterns: ['^%{WORD:level}: %{GREEDYDATA:text}$', '^%{GREEDYDATA:text}$']}"
    out = _grok(["ERROR: disk full", "plain text"], snippet, level=["unknown", "info"])
    assert out.main.column("level").to_pylist() == ["ERROR", "info"]
    assert out.main.column("text").to_pylist() == ["disk full", "plain text"]


def test_null_line_passes_missing_or_non_text_field_fails() -> None:
    out = _grok([None, APACHE[0]])
    assert out.main.column("verb").to_pylist() == [None, "GET"] and out.extra == {}
    missing = build_stage("{type: grok, field: body, patterns: ['%{IP:ip}']}").process(batch_of(message=["10.0.0.1"]))
    assert missing.extra["dropped"].column("_error").to_pylist() == ["no field 'body' in the record"]
    numbers = build_stage("{type: grok, field: n, patterns: ['%{INT:i}']}").process(batch_of(n=[1, 2]))
    assert numbers.extra["dropped"].column("_error").to_pylist() == ["field 'n' holds int64, not text"] * 2


@pytest.mark.parametrize(
    "kind", [pa.large_string(), pa.dictionary(pa.int32(), pa.string()), pa.binary()],
    ids=["large-string", "dictionary", "binary"],
)
def test_text_column_types(kind: pa.DataType) -> None:
    lines = pa.array([APACHE[0], "nope", APACHE[0]], pa.string()).cast(kind)
    out = build_stage(COMBINED).process(pa.RecordBatch.from_arrays([lines], names=["message"]))
    assert out.main.column("clientip").to_pylist() == ["83.149.9.216", "83.149.9.216"]
    assert out.extra["dropped"].num_rows == 1


def test_null_lines_of_any_column_type_pass_through() -> None:
    stage = build_stage("{type: grok, patterns: ['%{INT:n:int}']}")
    all_null = stage.process(batch_of(message=[None, None]))
    assert all_null.main.column("n").to_pylist() == [None, None] and all_null.extra == {}
    coded = pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 0], pa.int8()), pa.array(["took 12ms", None]))
    out = stage.process(pa.RecordBatch.from_arrays([coded], names=["message"]))
    assert out.main.column("n").to_pylist() == [12, None, None, 12]


def test_parse_lines_reads_a_lone_surrogate_as_a_question_mark() -> None:
    stage = build_stage("{type: grok, patterns: ['user=%{NOTSPACE:user}']}")
    assert stage.parse_lines(["user=a\ud800b", "user=ok"]) == [{"user": "a?b"}, {"user": "ok"}]


def test_invalid_utf8_is_replaced_and_still_matched() -> None:
    batch = pa.RecordBatch.from_pydict({"message": pa.array([b"user=J\xf6rg id=7"], pa.binary())})
    out = build_stage("{type: grok, patterns: ['user=%{NOTSPACE:user} id=%{INT:id:int}']}").process(batch)
    assert out.main.column("user").to_pylist() == ["J\ufffdrg"]
    assert out.main.column("id").to_pylist() == [7]


def test_repeated_lines_are_matched_once_and_spread_back() -> None:
    lines = [APACHE[i % 3] for i in range(3_000)]
    out = _grok(lines)
    assert out.main.column("timestamp").to_pylist()[:4] == [
        "17/May/2015:10:05:03 +0000", "17/May/2015:10:05:43 +0000", "17/May/2015:10:05:47 +0000", "17/May/2015:10:05:03 +0000"
    ]
    assert pc.value_counts(out.main.column("request")).to_pylist()[0]["counts"] == 1_000


def test_empty_batch_and_end_marker_pass_through() -> None:
    stage = build_stage(COMBINED)
    empty = batch_of(message=[APACHE[0]]).slice(0, 0)
    assert stage.process(empty).main.schema == empty.schema
    assert stage.process(pa.RecordBatch.from_pydict({})).main.num_columns == 0


def test_threads_share_one_stage() -> None:
    stage = build_stage(TYPED)
    chunks = [APACHE[i:i + 500] for i in range(0, 4_000, 500)]
    expected = [stage.process(batch_of(message=chunk)).main.column("bytes").to_pylist() for chunk in chunks]
    results: dict[int, list[Any]] = {}

    def work(index: int) -> None:
        results[index] = stage.process(batch_of(message=chunks[index])).main.column("bytes").to_pylist()

    threads = [threading.Thread(target=work, args=(index,)) for index in range(len(chunks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[index] for index in range(len(chunks))] == expected


def _cli(*args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "loglake.pipelines.cli", "parse", *args], input=data, capture_output=True, timeout=60)


def test_cli_prints_one_object_per_line_in_order() -> None:
    lines = [APACHE[0], "not a log line", APACHE[76], APACHE[TRUNCATED]]
    done = _cli("grok", "%{COMBINEDAPACHELOG}", data=("\n".join(lines) + "\n").encode())
    assert done.returncode == 0, done.stderr
    out = [json.loads(text) for text in done.stdout.decode().splitlines()]
    assert len(out) == 4
    assert out[0]["clientip"] == "83.149.9.216" and out[0]["bytes"] == "203023" and "rawrequest" not in out[0]
    assert out[1] == {"_error": "_grokparsefailure: no pattern matched: 'not a log line'", "message": "not a log line"}
    assert out[2]["request"] == "/robots.txt" and "bytes" not in out[2]
    assert out[3]["message"] == APACHE[TRUNCATED] and out[3]["_error"].startswith("_grokparsefailure: no pattern matched: '46.118")


def test_cli_converted_values_are_json_numbers_and_definitions_apply() -> None:
    data = b"took=48ms id=AB-1\ntook=x id=AB-2\n"
    done = _cli("grok", "took=%{INT:took:int}ms id=%{ORDER:id}", "--pattern", "ORDER=[A-Z]{2}-[0-9]", data=data)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.decode().splitlines()
    assert first == '{"took":48,"id":"AB-1"}'
    assert json.loads(second) == {"_error": "_grokparsefailure: no pattern matched: 'took=x id=AB-2'", "message": "took=x id=AB-2"}


def test_cli_unknown_pattern_name_exits_2_without_traceback() -> None:
    done = _cli("grok", "%{NOPE:x}", data=b"anything\n")
    assert done.returncode == 2
    assert b"unknown pattern name 'NOPE'" in done.stderr
    assert b"Traceback" not in done.stderr and done.stdout == b""
