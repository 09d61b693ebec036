"""`loglake parse`: one JSON object per input line, in order, errors as objects, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _parse(*args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "loglake.pipelines.cli", "parse", *args], input=data, capture_output=True, timeout=60)


LINES = [
    (b'{"a": 1, "b": {"c": [1, 2.5, null]}}', {"a": 1, "b": {"c": [1, 2.5, None]}}),
    (b'{"big": 123456789012345678901234567890}', {"big": 123456789012345678901234567890}),
    (b'{"x": NaN}', None),
    (b'{"x": Infinity}', None),
    (b"[1, 2]", None),
    (b"", None),
    (b'{"t": "a\tb"}', None),
    (b'{"s": "a\\u2028b"}\r', {"s": "a\u2028b"}),
    (b'{"raw": "x\xe2\x80\xa8y"}', {"raw": "x\u2028y"}),
    (b"\xff{}", None),
    (b'{"k": "caf\xc3\xa9"}', {"k": "café"}),
]


def test_json_prints_one_object_per_line_in_order() -> None:
    data = b"\n".join(line for line, _ in LINES)  # no final newline: the last line still counts
    done = _parse("json", data=data)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode("utf-8").split("\n")
    assert out[-1] == "" and len(out) - 1 == len(LINES)
    for (line, expected), text in zip(LINES, out):
        record = json.loads(text)
        if expected is None:
            assert set(record) == {"_error", "message"} and isinstance(record["_error"], str) and record["_error"]
            assert record["message"] == line.rstrip(b"\r").decode("utf-8", errors="replace")
        else:
            assert record == expected


@pytest.mark.parametrize(
    "line, reason",
    [(b'{"x": NaN}', "NaN is not JSON"), (b"[1, 2]", "JSON array is not an object"), (b"", "empty line"), (b"\xff{}", "invalid UTF-8 at byte 0")],
    ids=["nan", "array", "empty", "bad-utf8"],
)
def test_json_error_reasons(line: bytes, reason: str) -> None:
    record = json.loads(_parse("json", data=line + b"\n").stdout)
    assert reason in record["_error"]


def test_empty_input_prints_nothing() -> None:
    done = _parse("json", data=b"")
    assert (done.returncode, done.stdout) == (0, b"")


def test_unknown_parser_is_a_usage_error() -> None:
    done = _parse("nope", data=b"x\n")
    assert done.returncode == 2 and b"invalid choice: 'nope'" in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["grok", "%{NOPE}"], "loglake parse grok: grok pattern '%{NOPE}': unknown pattern name 'NOPE'"),
        (["grok", "--pattern", "X", "%{X}"], "loglake parse grok: --pattern takes NAME=REGEX, got 'X'"),
        (["syslog", "--tz", "Mars/Base"], "loglake parse syslog: unknown time zone 'Mars/Base'"),
    ],
    ids=["unknown-pattern", "bad-definition", "bad-zone"],
)
def test_bad_options_exit_2_with_one_line_and_no_traceback(args: list[str], message: str) -> None:
    done = _parse(*args, data=b"line\n")
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().startswith(message) and b"Traceback" not in done.stderr
