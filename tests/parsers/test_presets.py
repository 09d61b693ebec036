"""The web-server presets on the shared Apache log and on hand-written nginx and Apache error lines."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from loglake.schemas.errors import SpecError
from loglake.schemas.parsing import ParseFailure
from loglake.schemas.records import TIMESTAMP_TYPE
from tests.support import APACHE_LOG, batch_of, build_stage

CASES = Path(__file__).parent / "cases"
APACHE = APACHE_LOG.read_text(encoding="utf-8").splitlines()
APACHE_ERRORS = (CASES / "apache_error.log").read_text(encoding="utf-8").splitlines()
NGINX_ERRORS = (CASES / "nginx_error.log").read_text(encoding="utf-8").splitlines()
NGINX_ACCESS = (CASES / "nginx_access.log").read_text(encoding="utf-8").splitlines()
TRUNCATED = 8898


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)  # type: ignore[misc]


def _preset(lines: list[Any], snippet: str) -> Any:
    return build_stage(snippet, name="access").process(batch_of(message=lines))


def _row(out: Any, index: int) -> dict[str, Any]:
    return {name: out.main.column(name)[index].as_py() for name in out.main.schema.names if name != "message"}


def test_apache_combined_on_the_whole_log_sets_event_time_and_typed_fields() -> None:
    out = _preset(APACHE, "{type: apache_combined}")
    main = out.main
    assert main.num_rows == 9_999 and out.extra["dropped"].column("message").to_pylist() == [APACHE[TRUNCATED]]
    assert main.schema.field("timestamp").type == TIMESTAMP_TYPE
    assert main.schema.field("response").type == pa.int64() and main.schema.field("bytes").type == pa.int64()
    assert pc.min(main.column("timestamp")).as_py() == _utc(2015, 5, 17, 10, 5, 0)
    assert pc.max(main.column("timestamp")).as_py() == _utc(2015, 5, 20, 21, 5, 59)
    assert pc.count_distinct(main.column("timestamp")).as_py() == 4_362
    assert pc.sum(main.column("bytes")).as_py() == 2_747_282_505
    assert main.column("bytes").null_count == 669
    assert pc.sum(pc.greater_equal(main.column("response"), 500)).as_py() == 3


@pytest.mark.parametrize(
    "index, expected",
    [
        (0, {"clientip": "83.149.9.216", "ident": "-", "auth": "-", "timestamp": _utc(2015, 5, 17, 10, 5, 3), "verb": "GET",
             "request": "/presentations/logstash-monitorama-2013/images/kibana-search.png", "httpversion": "1.1", "rawrequest": None,
             "response": 200, "bytes": 203023, "referrer": "http://semicomplete.com/presentations/logstash-monitorama-2013/",
             "agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36"}),
        (76, {"clientip": "218.30.103.62", "ident": "-", "auth": "-", "timestamp": _utc(2015, 5, 17, 11, 5, 11), "verb": "GET",
              "request": "/robots.txt", "httpversion": "1.1", "rawrequest": None, "response": 200, "bytes": None, "referrer": "-",
              "agent": "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)"}),
        (9157, {"clientip": "64.131.102.243", "ident": "-", "auth": "-", "timestamp": _utc(2015, 5, 20, 14, 5, 16), "verb": "OPTIONS",
                "request": "/projects/xdotool/", "httpversion": "1.1", "rawrequest": None, "response": 500, "bytes": 626,
                "referrer": "-", "agent": "Microsoft Office Protocol Discovery"}),
    ],
    ids=["kibana-png", "bytes-dash", "options-500"],
)
def test_apache_combined_hand_checked(index: int, expected: dict[str, Any]) -> None:
    assert _row(_preset([APACHE[index]], "{type: apache_combined}"), 0) == expected


def test_apache_common_stops_before_referrer_and_reads_the_truncated_line() -> None:
    out = _preset([APACHE[0], APACHE[TRUNCATED]], "{type: apache_common}")
    assert out.extra == {}
    assert out.main.schema.names == ["message", "clientip", "ident", "auth", "timestamp", "verb", "request", "httpversion",
                                     "rawrequest", "response", "bytes"]
    assert out.main.column("timestamp").to_pylist() == [_utc(2015, 5, 17, 10, 5, 3), _utc(2015, 5, 20, 12, 5, 17)]
    assert out.main.column("bytes").to_pylist() == [203023, 235]


def test_nginx_access_formats_zones_and_forwarded_for() -> None:
    out = _preset(NGINX_ACCESS, "{type: nginx_access}")
    assert out.extra == {}
    assert out.main.column("timestamp").to_pylist() == [
        _utc(2024, 1, 2, 3, 4, 5), _utc(2024, 7, 2, 3, 4, 5), _utc(2025, 1, 1, 7, 59, 59), _utc(2025, 3, 1, 12, 0, 0),
    ]
    assert out.main.column("clientip").to_pylist() == ["192.0.2.10", "203.0.113.7", "2001:db8::1", "198.51.100.4"]
    assert out.main.column("auth").to_pylist() == ["-", "alice", "-", "-"]
    assert out.main.column("response").to_pylist() == [404, 201, 400, 304]
    assert out.main.column("bytes").to_pylist() == [153, 0, 157, None]
    assert out.main.column("verb").to_pylist() == ["GET", "POST", None, "HEAD"]
    assert out.main.column("rawrequest").to_pylist() == [None, None, r"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", None]
    assert out.main.column("x_forwarded_for").to_pylist() == [None, "198.51.100.23, 10.0.0.2", None, "-"]
    assert out.main.column("agent").to_pylist()[3] == r'Wget/1.21.4 \"quoted\" agent'


APACHE_ERROR_ROWS = [
    {"timestamp": _utc(2000, 10, 11, 14, 32, 52, 123456), "module": "core", "level": "error", "pid": 1234, "tid": 140245123456,
     "os_errorcode": None, "os_errormessage": None, "clientip": "192.0.2.1", "clientport": 56789, "errorcode": "AH00128",
     "errormsg": "File does not exist: /var/www/html/favicon.ico"},
    {"timestamp": _utc(2024, 3, 3, 10, 0, 0, 1), "module": "mpm_event", "level": "notice", "pid": 1, "tid": 139871234,
     "os_errorcode": None, "os_errormessage": None, "clientip": None, "clientport": None, "errorcode": "AH00489",
     "errormsg": "Apache/2.4.58 (Unix) configured -- resuming normal operations"},
    {"timestamp": _utc(2024, 6, 4, 23, 59, 59, 999999), "module": "proxy_fcgi", "level": "warn", "pid": 4567, "tid": 140000001,
     "os_errorcode": 104, "os_errormessage": "Connection reset by peer", "clientip": "2001:db8::7", "clientport": 50123,
     "errorcode": "AH01075", "errormsg": "Error dispatching request to : (polling)"},
    {"timestamp": _utc(2025, 2, 1, 8, 15, 0, 500000), "module": "authz_core", "level": "trace", "pid": 88, "tid": None,
     "os_errorcode": None, "os_errormessage": None, "clientip": "203.0.113.9", "clientport": 4431, "errorcode": "AH01626",
     "errormsg": "authorization result of Require all granted: granted"},
    {"timestamp": _utc(2000, 10, 11, 14, 32, 52), "module": None, "level": "error", "pid": None, "tid": None,
     "os_errorcode": None, "os_errormessage": None, "clientip": "127.0.0.1", "clientport": None, "errorcode": None,
     "errormsg": "client denied by server configuration: /export/home/live/ap/htdocs/test"},
    {"timestamp": _utc(1970, 1, 1), "module": None, "level": "critical", "pid": None, "tid": None,
     "os_errorcode": None, "os_errormessage": None, "clientip": None, "clientport": None, "errorcode": None,
     "errormsg": "(28)No space left on device: Couldn't create accept lock"},
]


@pytest.mark.parametrize("index", range(len(APACHE_ERROR_ROWS)),
                         ids=["24-client", "24-notice", "24-os-error-ipv6", "24-trace-no-tid", "22-client", "22-crit"])
def test_apache_error_lines(index: int) -> None:
    out = _preset(APACHE_ERRORS, "{type: apache_error}")
    assert out.extra == {}
    assert out.main.schema.field("level").type == pa.string()
    assert out.main.schema.field("pid").type == pa.int64()
    assert _row(out, index) == APACHE_ERROR_ROWS[index]


NGINX_ERROR_ROWS = [
    {"timestamp": _utc(2024, 1, 2, 2, 4, 5), "level": "error", "pid": 1234, "tid": 1234, "connection": 5,
     "errormsg": 'open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory)', "clientip": "192.0.2.10",
     "server": "localhost", "request": "GET /favicon.ico HTTP/1.1", "upstream": None, "http_host": "localhost", "referrer": "http://localhost/"},
    {"timestamp": _utc(2024, 1, 2, 2, 4, 6), "level": "notice", "pid": 1, "tid": 1, "connection": None,
     "errormsg": "start worker processes", "clientip": None, "server": None, "request": None, "upstream": None, "http_host": None,
     "referrer": None},
    {"timestamp": _utc(2024, 7, 2, 1, 4, 5), "level": "critical", "pid": 123, "tid": 0, "connection": 42,
     "errormsg": "connect() to unix:/run/php/php8.1-fpm.sock failed (2: No such file or directory) while connecting to upstream",
     "clientip": "203.0.113.7", "server": "example.com", "request": "POST /index.php HTTP/2.0",
     "upstream": "fastcgi://unix:/run/php/php8.1-fpm.sock:", "http_host": "example.com", "referrer": None},
    {"timestamp": _utc(2024, 12, 31, 22, 59, 59), "level": "warn", "pid": 99, "tid": 99, "connection": 1001,
     "errormsg": "an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/1/00/0000000001 while reading upstream",
     "clientip": "2001:db8::1", "server": "api.example.com", "request": "GET /export.csv HTTP/1.1",
     "upstream": "http://127.0.0.1:8080/export.csv", "http_host": "api.example.com", "referrer": None},
    {"timestamp": _utc(2025, 3, 30, 0, 30), "level": "emergency", "pid": 1, "tid": 1, "connection": None,
     "errormsg": "bind() to 0.0.0.0:80 failed (98: Address already in use)", "clientip": None, "server": None, "request": None,
     "upstream": None, "http_host": None, "referrer": None},
]


@pytest.mark.parametrize("index", range(len(NGINX_ERROR_ROWS)), ids=["open-failed", "notice", "crit-upstream", "warn-ipv6", "emerg"])
def test_nginx_error_lines_in_a_local_time_zone(index: int) -> None:
    out = _preset(NGINX_ERRORS, "{type: nginx_error, timezone: Europe/Berlin}")
    assert out.extra == {}
    assert _row(out, index) == NGINX_ERROR_ROWS[index]


def test_zone_less_times_default_to_utc() -> None:
    out = _preset(NGINX_ERRORS[:1], "{type: nginx_error}")
    assert out.main.column("timestamp").to_pylist() == [_utc(2024, 1, 2, 3, 4, 5)]


@pytest.mark.parametrize(
    "snippet, line, error",
    [
        ("{type: apache_error}", "[Wed Feb 30 14:32:52 2000] [error] no such day",
         "_grokparsefailure: timestamp 'Wed Feb 30 14:32:52 2000' is not a valid %a %b %d %H:%M:%S[.%f] %Y time"),
        ("{type: apache_combined}", APACHE[0].replace("17/May/2015", "17/Mai/2015"),
         "_grokparsefailure: timestamp '17/Mai/2015:10:05:03 +0000' is not a valid %d/%b/%Y:%H:%M:%S %z time"),
        ("{type: nginx_error}", "2024/02/30 00:00:00 [error] 1#1: no such day",
         "_grokparsefailure: timestamp '2024/02/30 00:00:00' is not a valid %Y/%m/%d %H:%M:%S time"),
        ("{type: nginx_access}", "just some text", "_grokparsefailure: no pattern matched: 'just some text'"),
    ],
    ids=["apache-error-feb-30", "german-month", "nginx-feb-30", "no-match"],
)
def test_a_time_that_does_not_read_fails_the_line(snippet: str, line: str, error: str) -> None:
    good = {"{type: apache_error}": APACHE_ERRORS[0], "{type: nginx_error}": NGINX_ERRORS[0]}.get(snippet, APACHE[0])
    out = _preset([good, line], snippet)
    assert out.main.num_rows == 1
    assert out.extra["dropped"].column("_error").to_pylist() == [error]


def test_target_keeps_time_and_level_top_level() -> None:
    out = _preset([APACHE_ERRORS[0], "not an error log line", APACHE_ERRORS[4]], "{type: apache_error, target: apache}")
    assert out.main.schema.names == ["message", "timestamp", "level", "apache"]
    assert out.main.column("level").to_pylist() == ["error", "error"]
    assert out.main.column("timestamp").to_pylist() == [_utc(2000, 10, 11, 14, 32, 52, 123456), _utc(2000, 10, 11, 14, 32, 52)]
    assert [event["errorcode"] for event in out.main.column("apache").to_pylist()] == ["AH00128", None]
    assert "timestamp" not in out.main.schema.field("apache").type.names
    assert out.extra["dropped"].column("message").to_pylist() == ["not an error log line"]


def test_parse_lines_gives_iso_times_with_offset() -> None:
    stage = build_stage("{type: apache_combined}")
    [first, failed] = stage.parse_lines([APACHE[76], APACHE[TRUNCATED]])
    assert first == {"clientip": "218.30.103.62", "ident": "-", "auth": "-", "timestamp": "2015-05-17T11:05:11+00:00", "verb": "GET",
                     "request": "/robots.txt", "httpversion": "1.1", "response": 200, "referrer": "-",
                     "agent": "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)"}
    assert isinstance(failed, ParseFailure) and failed.reason.startswith("_grokparsefailure: no pattern matched: '46.118.127.106")
    [error_line] = build_stage("{type: apache_error}").parse_lines(APACHE_ERRORS[:1])
    assert isinstance(error_line, dict) and error_line["timestamp"] == "2000-10-11T14:32:52.123456+00:00"


@pytest.mark.parametrize("preset", ["apache_combined", "apache_common", "nginx_access", "apache_error", "nginx_error"])
def test_parse_lines_agrees_with_process(preset: str) -> None:
    lines = [*APACHE[:20], APACHE[TRUNCATED], *APACHE_ERRORS, *NGINX_ERRORS, *NGINX_ACCESS, ""]
    stage = build_stage(f"{{type: {preset}}}")
    parsed = stage.parse_lines(lines)
    out = stage.process(batch_of(message=lines))
    kept = []
    for row in out.main.to_pylist():
        kept.append({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if k != "message" and v is not None})
    assert [result for result in parsed if not isinstance(result, ParseFailure)] == kept
    reasons = [result.reason for result in parsed if isinstance(result, ParseFailure)]
    assert reasons == (out.extra["dropped"].column("_error").to_pylist() if "dropped" in out.extra else [])


def test_unknown_time_zone_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as caught:
        build_stage("{type: nginx_error, timezone: Mars/Olympus}")
    [issue] = caught.value.issues
    assert issue.path == ("timezone",) and "unknown time zone 'Mars/Olympus'" in issue.message


def test_access_presets_have_no_timezone_option() -> None:
    with pytest.raises(SpecError) as caught:
        build_stage("{type: apache_combined, timezone: UTC}")
    assert "unknown key 'timezone'" in caught.value.issues[0].message


def test_cli_preset() -> None:
    data = "\n".join([APACHE[76], "nope"]).encode() + b"\n"
    done = subprocess.run([sys.executable, "-m", "loglake.pipelines.cli", "parse", "apache_combined"], input=data, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    first, second = (json.loads(line) for line in done.stdout.decode().splitlines())
    assert first["timestamp"] == "2015-05-17T11:05:11+00:00" and first["response"] == 200 and "bytes" not in first
    assert second == {"_error": "_grokparsefailure: no pattern matched: 'nope'", "message": "nope"}
