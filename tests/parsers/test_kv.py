"""The `kv` stage on FortiGate traffic and event logs, Heroku router lines, logfmt and postfix lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from loglake.schemas.errors import SpecError
from loglake.schemas.parsing import ParseFailure
from tests.support import batch_of, build_stage

CASES = Path(__file__).parent / "cases"
FORTIGATE = (CASES / "kv_fortigate.log").read_text().splitlines()
"""Two traffic lines (deny, accept with byte counts) and an admin-login event."""
HEROKU = (CASES / "kv_heroku_router.log").read_text().splitlines()
LOGFMT = 'ts=2024-01-02T03:04:05Z level=info msg="user logged in" user_id=42'
POSTFIX = "Jan  2 03:04:05 mail postfix/qmgr[1234]: 4F1A2B3C: from=<alice@example.com>, size=1234, nrcpt=1 (queue active)"


def _parse(lines: list[Any], snippet: str = "{type: kv}", **extra: list[Any]) -> Any:
    return build_stage(snippet, name="parse").process(batch_of(message=lines, **extra))


def _records(batch: pa.RecordBatch, skip: tuple[str, ...] = ("message", "seq")) -> list[dict[str, Any]]:
    """The parsed columns of each row, nulls left out (as `parse_lines` leaves them out)."""
    return [{k: v for k, v in row.items() if k not in skip and v is not None} for row in batch.to_pylist()]


def test_logfmt_line() -> None:
    out = _parse([LOGFMT])
    assert out.main.to_pylist() == [
        {"message": LOGFMT, "ts": "2024-01-02T03:04:05Z", "level": "info", "msg": "user logged in", "user_id": "42"}
    ]


def test_fortigate_lines_become_text_columns() -> None:
    out = _parse(FORTIGATE)
    assert out.extra == {}
    main = out.main
    assert main.column("devname").to_pylist() == ["FG100E"] * 3
    assert main.column("srcip").to_pylist() == ["10.0.0.1", "10.0.0.17", None]
    assert main.column("action").to_pylist() == ["deny", "accept", "login"]
    assert main.column("policyid").to_pylist() == ["0", "12", None]
    assert main.column("sentbyte").to_pylist() == [None, "5211", None]
    assert main.column("msg").to_pylist() == [None, None, "Administrator admin logged in successfully from https(10.0.0.9)"]
    assert main.column("ui").to_pylist()[2] == "https(10.0.0.9)"
    assert all(main.schema.field(name).type == pa.string() for name in main.schema.names)
    assert main.schema.names[:6] == ["message", "date", "time", "devname", "devid", "logid"]


def test_heroku_router_lines() -> None:
    out = _parse(HEROKU)
    assert _records(out.main)[1] == {
        "at": "error", "code": "H12", "desc": "Request timeout", "method": "GET", "path": "/", "host": "myapp.herokuapp.com",
        "request_id": "8601b555-6a83-4c12-8269-97c8e32cdb22", "fwd": "204.204.204.204", "dyno": "web.1", "connect": "0ms",
        "service": "30000ms", "status": "503", "bytes": "0", "protocol": "https",
    }
    assert out.main.column("path").to_pylist() == ["/", "/", "/api/orders?page=2&sort=desc"]
    assert out.main.column("fwd").to_pylist()[2] == "198.51.100.7,10.1.2.3"


@pytest.mark.parametrize(
    "line, expected",
    [
        ('msg="a b c" n=1', {"msg": "a b c", "n": "1"}),
        ("user='bob smith' n=1", {"user": "bob smith", "n": "1"}),
        (r'msg="she said \"hi\"" n=1', {"msg": 'she said "hi"', "n": "1"}),
        (r"msg='it\'s' n=1", {"msg": "it's", "n": "1"}),
        (r'path="C:\\temp\\x" n=1', {"path": "C:\\temp\\x", "n": "1"}),
        (r"path=C:\temp\x n=1", {"path": "C:\\temp\\x", "n": "1"}),
        ('q="a=b c=d" n=1', {"q": "a=b c=d", "n": "1"}),
        ("url=/search?q=logs&page=2 n=1", {"url": "/search?q=logs&page=2", "n": "1"}),
        ('empty= blank="" n=1', {"empty": "", "blank": "", "n": "1"}),
        ("word=it's n=1", {"word": "it's", "n": "1"}),
        ("Jan 2 sshd[42]: user=root port=22", {"user": "root", "port": "22"}),
        ("a=1  b=2", {"a": "1", "b": "2"}),
        ('msg="über café" n=1', {"msg": "über café", "n": "1"}),
    ],
    ids=["double-quoted", "single-quoted", "escaped-double", "escaped-single", "escaped-backslash", "plain-backslash",
         "pairs-inside-quotes", "equals-in-value", "empty-values", "apostrophe-inside", "text-around-pairs",
         "two-spaces", "unicode"],
)
def test_values(line: str, expected: dict[str, str]) -> None:
    stage = build_stage("{type: kv}", name="parse")
    assert _records(stage.process(batch_of(message=[line])).main) == [expected]
    assert stage.parse_lines([line]) == [expected]


@pytest.mark.parametrize(
    "snippet, line, expected",
    [
        ("{type: kv, prefix: fw_}", "srcip=10.0.0.1 action=deny", {"fw_srcip": "10.0.0.1", "fw_action": "deny"}),
        ("{type: kv, include_keys: [srcip, action]}", FORTIGATE[0], {"srcip": "10.0.0.1", "action": "deny"}),
        ("{type: kv, exclude_keys: [date, time, devid, logid, type, subtype, level, vd, srcintf, dstintf, policyid, service, proto]}",
         FORTIGATE[0], {"devname": "FG100E", "srcip": "10.0.0.1", "srcport": "51234", "dstip": "93.184.216.34", "dstport": "443", "action": "deny"}),
        ("{type: kv, include_keys: [srcip], prefix: fw_}", FORTIGATE[0], {"fw_srcip": "10.0.0.1"}),
        ("{type: kv, trim_value: '<>,'}", POSTFIX, {"from": "alice@example.com", "size": "1234", "nrcpt": "1"}),
        ("{type: kv, trim_key: '[]'}", "[user]=bob [id]=7", {"user": "bob", "id": "7"}),
        ("{type: kv, trim_value: ' '}", 'msg=" padded " n=1', {"msg": "padded", "n": "1"}),
        ("{type: kv}", "user=alice action=login user=mallory", {"user": "alice", "action": "login"}),
        ("{type: kv, field_split: '&', value_split: ':'}", "q:logs&page:2&sort:desc", {"q": "logs", "page": "2", "sort": "desc"}),
        ("{type: kv, field_split: ' ,', value_split: ':='}", "a:1,b=2 c:3", {"a": "1", "b": "2", "c": "3"}),
        ("{type: kv, field_split: '|'}", "src=10.0.0.1|dst=10.0.0.2|msg=a b", {"src": "10.0.0.1", "dst": "10.0.0.2", "msg": "a b"}),
    ],
    ids=["prefix", "include", "exclude", "include-then-prefix", "trim-value-postfix", "trim-key", "trim-inside-quotes",
         "duplicate-first-wins", "custom-splits", "split-character-sets", "pipe-split"],
)
def test_options(snippet: str, line: str, expected: dict[str, str]) -> None:
    stage = build_stage(snippet, name="parse")
    assert _records(stage.process(batch_of(message=[line])).main) == [expected]
    assert stage.parse_lines([line]) == [expected]


def test_included_keys_are_columns_even_when_absent() -> None:
    out = _parse(["action=deny"], "{type: kv, include_keys: [srcip, action], prefix: fw_}")
    assert out.main.schema.names == ["message", "fw_srcip", "fw_action"]
    assert out.main.column("fw_srcip").to_pylist() == [None]


def test_a_line_whose_pairs_are_all_filtered_out_is_kept_empty() -> None:
    stage = build_stage("{type: kv, include_keys: [srcip]}", name="parse")
    out = stage.process(batch_of(message=["user=bob"]))
    assert out.extra == {} and out.main.column("srcip").to_pylist() == [None]
    assert stage.parse_lines(["user=bob"]) == [{}]


BAD_LINES = [
    ("", "empty line"),
    ("   ", "no key=value pairs: '   '"),
    ("GET /index.html HTTP/1.1", "no key=value pairs: 'GET /index.html HTTP/1.1'"),
    ("a = b", "no key=value pairs: 'a = b'"),
    ('level=info msg="user logged in', "unbalanced quote in the value of 'msg' at char 16: 'level=info msg=\"user logged in'"),
    ('msg="done"now n=1', "unbalanced quote in the value of 'msg' at char 5: 'msg=\"done\"now n=1'"),
    ("user='bob", "unbalanced quote in the value of 'user' at char 6: \"user='bob\""),
]


@pytest.mark.parametrize("bad, error", BAD_LINES, ids=["empty", "blank", "no-pairs", "spaced-equals", "unterminated", "text-after-quote", "single-unterminated"])
def test_one_bad_line_among_good_ones(bad: str, error: str) -> None:
    lines = [*FORTIGATE[:2], bad, FORTIGATE[2]]
    stage = build_stage("{type: kv}", name="parse")
    out = stage.process(batch_of(message=lines, seq=[0, 1, 2, 3]))
    assert out.main.column("seq").to_pylist() == [0, 1, 3]
    assert out.main.column("action").to_pylist() == ["deny", "accept", "login"]
    dropped = out.extra["dropped"]
    assert (dropped.column("message").to_pylist(), dropped.column("seq").to_pylist()) == ([bad], [2])
    assert dropped.column("_error").to_pylist() == [error]
    assert dropped.column("_error_node").to_pylist() == ["parse"]
    assert stage.parse_lines([bad]) == [ParseFailure(error)]


def test_no_pairs_names_the_value_split() -> None:
    [failure] = build_stage("{type: kv, value_split: ':'}").parse_lines(["nothing here"])
    assert failure == ParseFailure("no key:value pairs: 'nothing here'")


def test_a_megabyte_line() -> None:
    blob = "x" * 1_000_000
    good, bad = f"id=7 blob={blob} end=1", "x" * 1_000_000
    out = _parse([good, bad])
    assert out.main.column("blob").to_pylist() == [blob]
    assert out.main.column("end").to_pylist() == ["1"]
    assert out.extra["dropped"].column("_error").to_pylist() == ["no key=value pairs: '" + "x" * 119 + "…'"]


@pytest.mark.parametrize("on_error, rows, discarded", [("keep", 3, 0), ("discard", 2, 1)], ids=["keep", "discard"])
def test_bad_line_follows_on_error(on_error: str, rows: int, discarded: int) -> None:
    out = _parse(["user=alice", "not a pair", "user=bob"], f"{{type: kv, on_error: {on_error}}}")
    assert out.extra == {}
    assert out.discarded == discarded
    assert out.main.column("user").to_pylist() == ["alice", "bob", None][:rows]
    if on_error == "keep":
        assert out.main.column("message").to_pylist()[2] == "not a pair"
        assert out.main.column("_error").to_pylist() == [None, None, "no key=value pairs: 'not a pair'"]


def test_target_writes_one_struct() -> None:
    stage = build_stage("{type: kv, target: fw, include_keys: [srcip, action]}", name="parse")
    out = stage.process(batch_of(message=[FORTIGATE[0], None]))
    assert out.main.schema.names == ["message", "fw"]
    assert out.main.column("fw").to_pylist() == [{"srcip": "10.0.0.1", "action": "deny"}, None]
    assert stage.parse_lines([FORTIGATE[0]]) == [{"fw": {"srcip": "10.0.0.1", "action": "deny"}}]


def test_parsed_key_replaces_a_column_logstash_style() -> None:
    out = _parse([LOGFMT, "user_id=7"], level=["unknown", "unknown"])
    assert out.main.column("level").to_pylist() == ["info", "unknown"]


def test_null_line_passes_and_missing_or_non_text_field_fails() -> None:
    out = _parse([None, "a=1"])
    assert out.main.column("a").to_pylist() == [None, "1"]
    all_null = _parse([None], "{type: kv, target: kv}")  # a column of Arrow type null
    assert all_null.main.to_pylist() == [{"message": None, "kv": None}]
    missing = build_stage("{type: kv, field: line}").process(batch_of(message=["a=1"]))
    assert missing.extra["dropped"].column("_error").to_pylist() == ["no field 'line' in the record"]
    numbers = build_stage("{type: kv, field: n}").process(batch_of(n=[1.5]))
    assert numbers.extra["dropped"].column("_error").to_pylist() == ["field 'n' holds double, not text"]


def test_empty_batch_is_returned_as_is() -> None:
    empty = batch_of(message=["a=1"]).slice(0, 0)
    out = build_stage("{type: kv}").process(empty)
    assert out.main.num_rows == 0 and out.main.schema == empty.schema


def test_repeated_lines_are_parsed_once_and_spread() -> None:
    lines = [FORTIGATE[i % 3] if i % 7 else "broken" for i in range(3_000)]
    out = _parse(lines, seq=list(range(3_000)))
    assert out.main.num_rows == 3_000 - 429
    expected = [["deny", "accept", "login"][i % 3] for i in range(3_000) if i % 7]
    assert out.main.column("action").to_pylist() == expected
    assert out.main.column("seq").to_pylist() == [i for i in range(3_000) if i % 7]
    assert out.extra["dropped"].column("seq").to_pylist() == list(range(0, 3_000, 7))


def test_parse_lines_agrees_with_process() -> None:
    lines = [*FORTIGATE, *HEROKU, LOGFMT, POSTFIX, *(bad for bad, _ in BAD_LINES), FORTIGATE[0]]
    out = build_stage("{type: kv}", name="parse").process(batch_of(message=lines))
    results = build_stage("{type: kv}", name="parse").parse_lines(lines)
    assert _records(out.main) == [r for r in results if not isinstance(r, ParseFailure)]
    assert out.extra["dropped"].column("_error").to_pylist() == [r.reason for r in results if isinstance(r, ParseFailure)]


@pytest.mark.parametrize(
    "snippet, path, message",
    [
        ("{type: kv, include_keys: [srcip, action], exclude_keys: [action, dstip]}", ("exclude_keys",), "'include_keys' and 'exclude_keys' both name 'action'"),
        ("{type: kv, field_split: ' =', value_split: '='}", ("value_split",), "'field_split' and 'value_split' both contain '='"),
        ("{type: kv, field_split: ''}", ("field_split",), "String should have at least 1 character"),
        ("{type: kv, value_split: '\"'}", ("value_split",), "quote characters cannot separate pairs or keys (they quote values)"),
        ("{type: kv, include: [a]}", ("include",), "unknown key 'include'; did you mean 'include_keys'?"),
    ],
    ids=["include-and-exclude-overlap", "splits-overlap", "empty-field-split", "quote-as-split", "misspelt-key"],
)
def test_bad_config_is_a_spec_error(snippet: str, path: tuple[str, ...], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        build_stage(snippet, name="parse")
    [issue] = caught.value.issues
    assert (issue.path, issue.message, issue.node) == (path, message, "parse")


def test_disjoint_include_and_exclude_are_allowed() -> None:
    stage = build_stage("{type: kv, include_keys: [srcip], exclude_keys: [dstip]}")
    assert stage.parse_lines(["srcip=10.0.0.1 dstip=10.0.0.2"]) == [{"srcip": "10.0.0.1"}]


@pytest.mark.e2e
def test_cli_prints_one_object_per_line() -> None:
    data = (LOGFMT + "\nplain text\n" + FORTIGATE[0] + "\r\n\nmsg=\"open\n").encode()
    done = subprocess.run(
        [sys.executable, "-m", "loglake.pipelines.cli", "parse", "kv", "--include", "msg", "--include", "action", "--include", "level"],
        input=data, capture_output=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert [json.loads(line) for line in done.stdout.decode().splitlines()] == [
        {"level": "info", "msg": "user logged in"},
        {"_error": "no key=value pairs: 'plain text'", "message": "plain text"},
        {"level": "notice", "action": "deny"},
        {"_error": "empty line", "message": ""},
        {"_error": "unbalanced quote in the value of 'msg' at char 5: 'msg=\"open'", "message": 'msg="open'},
    ]
