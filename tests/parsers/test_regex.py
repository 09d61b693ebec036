"""The `regex` stage: named groups of one regular expression (the `regex` module's syntax) as fields."""

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
NGINX_ERRORS = (CASES / "nginx_error.log").read_text(encoding="utf-8").splitlines()
NGINX = r"""{type: regex, pattern: '^(?P<date>\d{4}/\d\d/\d\d) (?P<time>[\d:]+) \[(?<level>\w+)\] (?P<pid>\d+)#(?P<tid>\d+): (?:\*(?P<cid>\d+) )?(?P<text>.*?)(?:, client: (?P<client>[^,]+))?(?:, server: (?P<server>[^,]*))?(?:, .*)?$'}"""


def _regex(lines: list[Any], snippet: str = NGINX, **extra: list[Any]) -> Any:
    return build_stage(snippet, name="parse").process(batch_of(message=lines, **extra))


@pytest.mark.parametrize(
    "index, expected",
    [
        (0, {"date": "2024/01/02", "time": "03:04:05", "level": "error", "pid": "1234", "tid": "1234", "cid": "5",
             "text": 'open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory)',
             "client": "192.0.2.10", "server": "localhost"}),
        (1, {"date": "2024/01/02", "time": "03:04:06", "level": "notice", "pid": "1", "tid": "1", "cid": None,
             "text": "start worker processes", "client": None, "server": None}),
        (3, {"date": "2024/12/31", "time": "23:59:59", "level": "warn", "pid": "99", "tid": "99", "cid": "1001",
             "text": "an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/1/00/0000000001 while reading upstream",
             "client": "2001:db8::1", "server": "api.example.com"}),
    ],
    ids=["open-failed", "notice-no-client", "ipv6-client"],
)
def test_named_groups_become_string_columns(index: int, expected: dict[str, Any]) -> None:
    out = _regex([NGINX_ERRORS[index]])
    assert out.extra == {}
    assert all(out.main.schema.field(name).type == pa.string() for name in expected)
    assert {name: out.main.column(name)[0].as_py() for name in expected} == expected


def test_unanchored_search_empty_group_kept_and_group_that_did_not_take_part_null() -> None:
    stage = build_stage(r"{type: regex, pattern: 'user=(?P<user>\w*)(?: role=(?P<role>\w+))?'}")
    assert stage.parse_lines(["GET / user=alice role=admin", "user= id=3", "nobody"]) == [
        {"user": "alice", "role": "admin"}, {"user": ""}, ParseFailure("the pattern did not match: 'nobody'"),
    ]
    out = stage.process(batch_of(message=["user= id=3"]))
    assert out.main.column("user").to_pylist() == [""] and out.main.column("role").to_pylist() == [None]


def test_unmatched_lines_are_routed_with_a_quoted_copy() -> None:
    out = _regex([NGINX_ERRORS[1], "Jan 02 03:04:05 host nginx: started", ""], seq=[0, 1, 2])
    assert out.main.column("seq").to_pylist() == [0]
    dropped = out.extra["dropped"]
    assert dropped.column("_error").to_pylist() == [
        "the pattern did not match: 'Jan 02 03:04:05 host nginx: started'", "the pattern did not match: ''"
    ]
    assert dropped.column("_error_node").to_pylist() == ["parse", "parse"]


@pytest.mark.parametrize("on_error, rows, discarded", [("keep", 2, 0), ("discard", 1, 1)], ids=["keep", "discard"])
def test_on_error(on_error: str, rows: int, discarded: int) -> None:
    out = _regex([NGINX_ERRORS[1], "junk"], NGINX.replace("'}", f"', on_error: {on_error}}}"))
    assert (out.main.num_rows, out.discarded) == (rows, discarded)
    assert out.main.column("level").to_pylist()[0] == "notice"


def test_nested_names_and_target() -> None:
    snippet = r"{type: regex, pattern: '(?<[src][ip]>[\d.]+):(?<[src][port]>\d+) -> (?P<dst>\S+)', target: conn}"
    stage = build_stage(snippet)
    out = stage.process(batch_of(message=["10.0.0.1:5353 -> 10.0.0.2:53", None]))
    assert out.main.schema.names == ["message", "conn"]
    assert out.main.column("conn").to_pylist() == [{"src": {"ip": "10.0.0.1", "port": "5353"}, "dst": "10.0.0.2:53"}, None]
    assert stage.parse_lines(["10.0.0.1:5353 -> 10.0.0.2:53"]) == [{"conn": {"src": {"ip": "10.0.0.1", "port": "5353"}, "dst": "10.0.0.2:53"}}]


def test_regex_module_syntax_works() -> None:
    stage = build_stage(r"{type: regex, pattern: '(?P<word>\p{Lu}\p{Ll}+)(?P<rest>(?>\d+))'}")
    assert stage.parse_lines(["id Élodie42"]) == [{"word": "Élodie", "rest": "42"}]


def test_duplicate_group_names_first_that_took_part_wins() -> None:
    stage = build_stage(r"{type: regex, pattern: '^(?:(?P<n>\d+)s|(?P<n>\d+)ms)$'}")
    assert stage.parse_lines(["3s", "250ms"]) == [{"n": "3"}, {"n": "250"}]


def test_parse_lines_agrees_with_process() -> None:
    stage = build_stage(NGINX, name="parse")
    lines = [*NGINX_ERRORS, "junk", NGINX_ERRORS[0]]
    parsed = stage.parse_lines(lines)
    out = stage.process(batch_of(message=lines))
    kept = [{k: v for k, v in row.items() if k != "message" and v is not None} for row in out.main.to_pylist()]
    assert [result for result in parsed if not isinstance(result, ParseFailure)] == kept
    assert [result.reason for result in parsed if isinstance(result, ParseFailure)] == out.extra["dropped"].column("_error").to_pylist()


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("(?P<a>x", "regex '(?P<a>x' does not compile: missing )"),
        ("(\\d+) (\\w+)", "has no named group, so nothing to capture"),
        ("(?P<a>x)(?P<[a][b]>y)", "'a' is captured both as a value and as the parent of '[a][b]'"),
    ],
    ids=["does-not-compile", "no-named-group", "value-and-parent"],
)
def test_bad_pattern_is_a_spec_error(pattern: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        build_stage(json.dumps({"type": "regex", "pattern": pattern}))
    [issue] = caught.value.issues
    assert issue.path == ("pattern",) and message in issue.message


def _cli(*args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "loglake.pipelines.cli", "parse", *args], input=data, capture_output=True, timeout=60)


def test_cli_prints_one_object_per_line() -> None:
    done = _cli("regex", r"(?P<level>[A-Z]+) \[(?<thread>[^\]]+)\]", data=b"INFO [main] started\nno brackets\n")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.decode().splitlines()] == [
        {"level": "INFO", "thread": "main"},
        {"_error": "the pattern did not match: 'no brackets'", "message": "no brackets"},
    ]


def test_cli_bad_pattern_exits_2() -> None:
    done = _cli("regex", "(?P<x>unclosed", data=b"x\n")
    assert done.returncode == 2 and b"does not compile" in done.stderr and b"Traceback" not in done.stderr
